import { describe, expect, it } from "vitest";
import { agentState, ageText, memoryText, queueSummary, type AgentStatus } from "../src/lib/agents";

const agent = (over: Partial<AgentStatus>): AgentStatus => ({
  id: "a", name: "a", queue: "gpu", host: "h", cpus: 4, memory_mib: 8192, gpus: 1, gpu_types: [], status: "active",
  registered_at: "", lost_at: null, message: null, live: true, heartbeat_age_s: 1, running_jobs: 0, ...over });

describe("agent state", () => {
  it("is idle, busy or gone from the lease, the heartbeat's age and the running jobs", () => {
    expect(agentState(agent({}), 15)).toBe("idle");
    expect(agentState(agent({ running_jobs: 2 }), 15)).toBe("busy");
    expect(agentState(agent({ live: false, running_jobs: 1 }), 15)).toBe("gone");
    expect(agentState(agent({ status: "lost" }), 15)).toBe("gone");
    expect(agentState(agent({ heartbeat_age_s: 16 }), 15)).toBe("gone");
    expect(agentState(agent({ heartbeat_age_s: null }), 15)).toBe("idle");
  });
  it("words ages and memory", () => {
    expect(ageText(0.44)).toBe("0.4 s ago");
    expect(ageText(125)).toBe("2 min ago");
    expect(ageText(7300)).toBe("2 h ago");
    expect(ageText(null)).toBe("—");
    expect(memoryText(512)).toBe("512 MiB");
    expect(memoryText(1536)).toBe("1.5 GiB");
  });
});

describe("queue summary", () => {
  it("counts agents by state per queue and the jobs waiting, queues by name", () => {
    const rows = queueSummary({ lease_s: 15, queued: { cpu: 3, empty: 2 }, agents: [
      agent({ id: "1", queue: "gpu" }), agent({ id: "2", queue: "gpu", running_jobs: 1 }),
      agent({ id: "3", queue: "cpu", live: false })] });
    expect(rows).toEqual([
      { queue: "cpu", agents: 0, idle: 0, busy: 0, gone: 1, queued: 3 },
      { queue: "empty", agents: 0, idle: 0, busy: 0, gone: 0, queued: 2 },
      { queue: "gpu", agents: 2, idle: 1, busy: 1, gone: 0, queued: 0 },
    ]);
  });
});

import { describe, expect, it } from "vitest";
import { byEnvironment, deploymentState, describeReplicas, describeTraffic, describeVersion, endpointOf, hostPort, scaleProblem, type DeploymentRow } from "../src/lib/deployments";

const row = (name: string, environment: string, extra: Partial<DeploymentRow> = {}): DeploymentRow => ({
  name, environment, model: "m", follows: null, version: 1, run_id: null, replicas: { healthy: 0, total: 1 },
  traffic: null, requests_per_s: null, error_rate: null, seq: 1, ...extra,
});

describe("byEnvironment", () => {
  it("keeps every environment with its protected flag, deployments sorted by name", () => {
    const g = byEnvironment([row("b", "prod"), row("a", "prod"), row("x", "dev")],
      [{ name: "prod", protected: true }, { name: "staging", protected: false }]);
    expect(g.map((e) => [e.name, e.protected, e.deployments.map((d) => d.name)])).toEqual([
      ["dev", false, ["x"]], ["prod", true, ["a", "b"]], ["staging", false, []]]);
  });
});

describe("wording", () => {
  it("says versions, traffic and replicas", () => {
    expect(describeVersion({ version: 3, follows: "production" })).toBe("v3 (follows production)");
    expect(describeVersion({ version: 2, follows: null })).toBe("v2 (pinned)");
    expect(describeTraffic(null)).toBe("none");
    expect(describeTraffic({ canary: { version: 4, percent: 10 }, shadow: { version: 5 } })).toBe("canary v4 at 10%, shadow v5");
    expect(describeReplicas({ healthy: 1, total: 2 })).toBe("1 of 2 ready");
  });
  it("names the state from ready and desired replicas", () => {
    expect(deploymentState({ healthy: 0, total: 0 })).toBe("stopped");
    expect(deploymentState({ healthy: 2, total: 2 })).toBe("ready");
    expect(deploymentState({ healthy: 1, total: 2 })).toBe("partial");
    expect(deploymentState({ healthy: 0, total: 2 })).toBe("down");
  });
  it("reads host and port from a replica URL and picks a started one as the endpoint", () => {
    expect(hostPort("http://127.0.0.1:8101/")).toBe("127.0.0.1:8101");
    expect(hostPort("not a url")).toBe("not a url");
    expect(endpointOf([{ replica_id: "a", url: "http://h:1", version: 1, state: "failed" },
      { replica_id: "b", url: "http://h:2", version: 1, state: "started" }])).toBe("http://h:2");
    expect(endpointOf([])).toBeNull();
  });
});

describe("scaleProblem", () => {
  it("takes whole numbers from 0 to the maximum", () => {
    expect(scaleProblem("0")).toBeNull();
    expect(scaleProblem(" 2 ")).toBeNull();
    expect(scaleProblem("-1")).toMatch(/whole number/);
    expect(scaleProblem("1.5")).toMatch(/whole number/);
    expect(scaleProblem("")).toMatch(/whole number/);
    expect(scaleProblem("300")).toBe("Replicas must be at most 256.");
  });
});

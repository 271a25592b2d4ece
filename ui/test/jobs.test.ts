import { describe, expect, it } from "vitest";
import { applyJobEvent, jobStreamUrl, type Job } from "../src/lib/jobs";
import type { StreamEvent } from "../src/lib/types";

let seq = 0;
function ev(type: string, id: string, data: Record<string, unknown> = {}, project = "p"): StreamEvent {
  return { type, project, aggregate: "job", aggregate_id: id, data, actor: "u", time: `t${++seq}`, sequence: seq };
}

describe("live jobs", () => {
  it("a submitted job appears at the top, queued; a repeat adds nothing", () => {
    const sub = ev("job.submitted", "j1", { run_id: "r1", spec: { name: "train", queue: "gpu" } });
    const jobs = applyJobEvent([], sub, "p");
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ id: "j1", run_id: "r1", name: "train", queue: "gpu", status: "queued", attempt: 1 });
    expect(applyJobEvent(jobs, sub, "p")).toBe(jobs);
  });

  it("follows a job through its states as the scheduler does", () => {
    let jobs: Job[] = applyJobEvent([], ev("job.submitted", "j1", { run_id: "r1", spec: { queue: "default" } }), "p");
    jobs = applyJobEvent(jobs, ev("job.assigned", "j1", { attempt: 1 }), "p");
    expect(jobs[0]!.status).toBe("assigned");
    jobs = applyJobEvent(jobs, ev("job.started", "j1", { attempt: 1 }), "p");
    expect(jobs[0]!.status).toBe("running");
    jobs = applyJobEvent(jobs, ev("job.retried", "j1", { attempt: 2, previous_attempt: 1, reason: "exit" }), "p");
    expect(jobs[0]).toMatchObject({ status: "queued", attempt: 2 });
    jobs = applyJobEvent(jobs, ev("job.cancel_requested", "j1", { attempt: 2 }), "p");
    expect(jobs[0]!.cancel_requested).toBe(true);
    jobs = applyJobEvent(jobs, ev("job.failed", "j1", { attempt: 2, exit_code: 3, reason: "exit", message: "boom" }), "p");
    expect(jobs[0]).toMatchObject({ status: "failed", exit_code: 3, reason: "exit", message: "boom" });
  });

  it("ignores other projects, other aggregates and unknown jobs", () => {
    const jobs = applyJobEvent([], ev("job.submitted", "j1", { spec: {} }), "p");
    expect(applyJobEvent(jobs, ev("job.started", "j1", {}, "q"), "p")).toBe(jobs);
    expect(applyJobEvent(jobs, { ...ev("job.started", "j1"), aggregate: "run" }, "p")).toBe(jobs);
    expect(applyJobEvent(jobs, ev("job.started", "j9"), "p")).toBe(jobs);
  });

  it("subscribes to the project's job events", () => {
    expect(jobStreamUrl("my p")).toBe("/api/v1/events/stream?project=my+p&types=job.*");
  });
});

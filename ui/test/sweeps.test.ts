import { describe, expect, it } from "vitest";
import { progressText, shouldReload, sortTrials, sweepStreamUrl, trialProgress, type Trial } from "../src/lib/sweeps";
import type { StreamEvent } from "../src/lib/types";

const trial = (number: number, value: number | null, state = "complete"): Trial =>
  ({ number, state, params: {}, value, step: null, job_id: null, run_id: null, error: null });

describe("sweep trials", () => {
  const trials = [trial(0, 0.5), trial(1, null, "running"), trial(2, 0.2), trial(3, 0.9), trial(4, 0.2)];
  it("sorts by the objective, best first for the goal, no value last, ties by number", () => {
    expect(sortTrials(trials, "value", "minimize").map((t) => t.number)).toEqual([2, 4, 0, 3, 1]);
    expect(sortTrials(trials, "value", "maximize").map((t) => t.number)).toEqual([3, 0, 2, 4, 1]);
    expect(sortTrials(trials, "value", "minimize", true).map((t) => t.number)).toEqual([3, 0, 2, 4, 1]);
  });
  it("sorts by number either way and leaves the input alone", () => {
    expect(sortTrials(trials, "number", "minimize", true).map((t) => t.number)).toEqual([4, 3, 2, 1, 0]);
    expect(trials.map((t) => t.number)).toEqual([0, 1, 2, 3, 4]);
  });
  it("counts trials done (any ending) against the budget or those started", () => {
    const counts = { running: 2, complete: 3, pruned: 1, failed: 1, cancelled: 0 };
    expect(trialProgress(counts)).toEqual({ done: 5, started: 7, running: 2 });
    expect(progressText(counts, 40)).toBe("5 of 40");
    expect(progressText(counts, null)).toBe("5 of 7 started");
  });
});

describe("sweep live updates", () => {
  const ev = (type: string, project = "p", id = "s1"): StreamEvent =>
    ({ type, project, aggregate: "sweep", aggregate_id: id, data: {}, actor: "u", time: "", sequence: 1 });
  it("reloads on the project's (or this sweep's) state changes, not on pruner reports", () => {
    expect(shouldReload(ev("sweep.trial_started"), "p")).toBe(true);
    expect(shouldReload(ev("sweep.trial_finished"), "p", "s1")).toBe(true);
    expect(shouldReload(ev("sweep.trial_finished", "p", "s2"), "p", "s1")).toBe(false);
    expect(shouldReload(ev("sweep.trial_reported"), "p", "s1")).toBe(false);
    expect(shouldReload(ev("sweep.created", "q"), "p")).toBe(false);
    expect(sweepStreamUrl("a b")).toBe("/api/v1/events/stream?project=a+b&types=sweep.*");
  });
});

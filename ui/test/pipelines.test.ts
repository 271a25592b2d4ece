import { describe, expect, it } from "vitest";
import { canDecide, levels, needsFromEvents, pipelineStreamUrl, shouldRefresh } from "../src/lib/pipelines";
import { atLeast, can } from "../src/lib/roles";
import { parseRoute, routePath } from "../src/lib/router";
import type { StreamEvent } from "../src/lib/types";

const ids = (ls: { id: string }[][]) => ls.map((l) => l.map((s) => s.id));

describe("levels", () => {
  it("puts each step at its longest chain of needs, keeping the given order in a level", () => {
    const steps = ["prepare", "train", "drift", "evaluate", "gate", "approve"].map((id) => ({ id }));
    const needs = { train: ["prepare"], drift: ["prepare"], evaluate: ["train"], gate: ["evaluate", "drift"], approve: ["gate", "prepare"] };
    expect(ids(levels(steps, needs))).toEqual([["prepare"], ["train", "drift"], ["evaluate"], ["gate"], ["approve"]]);
  });

  it("puts steps without needs (or with unknown needs) at level 0 and survives a cycle", () => {
    expect(ids(levels([{ id: "a" }, { id: "b" }], { b: ["nosuch"] }))).toEqual([["a", "b"]]);
    const cyc = levels([{ id: "a" }, { id: "b" }], { a: ["b"], b: ["a"] });
    expect(cyc.flat().map((s) => s.id).sort()).toEqual(["a", "b"]);
  });

  it("reads each step's needs from the run's start event", () => {
    const events = [
      { type: "pipeline_run.started", data: { definition: { steps: [{ id: "a", needs: [] }, { id: "b", needs: ["a"] }] } } },
      { type: "step.started", data: { step: "a" } },
    ];
    expect(needsFromEvents(events)).toEqual({ a: [], b: ["a"] });
    expect(needsFromEvents([])).toEqual({});
  });
});

describe("the approver rule", () => {
  const waiting = (required_role: string | null) => ({ state: "waiting_approval", required_role });
  it("needs a role at least the step's, viewer < editor < admin", () => {
    expect(canDecide("viewer", waiting("viewer"))).toBe(true);
    expect(canDecide("viewer", waiting("editor"))).toBe(false);
    expect(canDecide("editor", waiting("editor"))).toBe(true);
    expect(canDecide("editor", waiting("admin"))).toBe(false);
    expect(canDecide("admin", waiting("admin"))).toBe(true);
    expect(canDecide(null, waiting("viewer"))).toBe(false);
  });
  it("offers nothing for a step that is not waiting, or an unknown role", () => {
    expect(canDecide("admin", { state: "succeeded", required_role: "viewer" })).toBe(false);
    expect(canDecide("admin", waiting("owner"))).toBe(false);
    expect(atLeast("editor", "viewer")).toBe(true);
  });
  it("lets editors cancel a run, not viewers", () => {
    expect(can("editor", "pipeline.cancel")).toBe(true);
    expect(can("viewer", "pipeline.cancel")).toBe(false);
  });
});

describe("which events refresh", () => {
  const ev = (over: Partial<StreamEvent>): StreamEvent => ({
    type: "step.started", project: "p", aggregate: "pipeline_run", aggregate_id: "r1", data: {}, actor: "a", time: "t", sequence: 1, ...over,
  });
  it("a run page reads again on any event of its run only", () => {
    for (const type of ["step.started", "gate.failed", "approval.requested", "approval.granted", "pipeline_run.finished"]) {
      expect(shouldRefresh(ev({ type }), "p", "r1")).toBe(true);
    }
    expect(shouldRefresh(ev({ aggregate_id: "r2" }), "p", "r1")).toBe(false);
    expect(shouldRefresh(ev({ project: "q" }), "p", "r1")).toBe(false);
    expect(shouldRefresh(ev({ aggregate: "job", type: "job.started" }), "p", "r1")).toBe(false);
  });
  it("the list reads again when a run starts, is cancelled or finishes", () => {
    expect(shouldRefresh(ev({ type: "pipeline_run.started", aggregate_id: "new" }), "p", null)).toBe(true);
    expect(shouldRefresh(ev({ type: "pipeline_run.finished" }), "p", null)).toBe(true);
    expect(shouldRefresh(ev({ type: "step.started" }), "p", null)).toBe(false);
    expect(shouldRefresh(ev({ type: "pipeline_run.started", project: "q" }), "p", null)).toBe(false);
  });
  it("asks the stream for the pipeline event families of the project", () => {
    const u = new URL(pipelineStreamUrl("my p"), "http://x");
    expect(u.searchParams.get("project")).toBe("my p");
    expect(u.searchParams.get("types")).toBe("pipeline_run.*,step.*,gate.*,approval.*");
  });
});

describe("pipeline routes", () => {
  it("round-trip", () => {
    for (const path of ["/projects/my%20p/pipelines", "/projects/p/pipelines/r%2F1"]) {
      expect(routePath(parseRoute(path))).toBe(path);
    }
    expect(parseRoute("/projects/p/pipelines/r1")).toEqual({ page: "pipeline", project: "p", runId: "r1" });
  });
});

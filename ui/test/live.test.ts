import { describe, expect, it } from "vitest";
import { appendPage, applyEvent, parseEvent, streamUrl } from "../src/lib/live";
import type { Run, StreamEvent } from "../src/lib/types";

const ev = (type: string, id: string, data: Record<string, unknown>, project = "vision"): StreamEvent => ({
  type, project, aggregate: "run", aggregate_id: id, data, actor: "ana", time: "2026-12-05T03:00:00Z", sequence: 7,
});

const created = ev("run.created", "r2", { experiment_id: "e1", name: "bert", params: { lr: "0.1" }, tags: { t: "x" },
  description: "", status: "running" });

describe("live runs reducer", () => {
  it("adds a created run at the top", () => {
    const { runs, added } = applyEvent([], created, "vision");
    expect(added).toBe(true);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ id: "r2", name: "bert", status: "running", params: { lr: "0.1" },
      created_by: "ana", started_at: "2026-12-05T03:00:00Z" });
  });

  it("ignores a duplicate, another project and other aggregates", () => {
    const once = applyEvent([], created, "vision").runs;
    expect(applyEvent(once, created, "vision")).toEqual({ runs: once, added: false });
    expect(applyEvent([], { ...created, project: "nlp" }, "vision").runs).toEqual([]);
    expect(applyEvent([], { ...created, aggregate: "model" }, "vision").runs).toEqual([]);
  });

  it("updates rows in place", () => {
    let runs: Run[] = applyEvent([], created, "vision").runs;
    runs = applyEvent(runs, ev("run.tag_set", "r2", { key: "stage", value: "eval" }), "vision").runs;
    runs = applyEvent(runs, ev("run.params_logged", "r2", { params: { epochs: "3" } }), "vision").runs;
    runs = applyEvent(runs, ev("run.finished", "r2", { status: "failed", message: "oom" }), "vision").runs;
    expect(runs[0]).toMatchObject({ status: "failed", status_message: "oom", tags: { t: "x", stage: "eval" },
      params: { lr: "0.1", epochs: "3" }, ended_at: "2026-12-05T03:00:00Z" });
    runs = applyEvent(runs, ev("run.tag_deleted", "r2", { key: "t" }), "vision").runs;
    expect(runs[0]!.tags).toEqual({ stage: "eval" });
    runs = applyEvent(runs, ev("run.updated", "r2", { name: "bert-2" }), "vision").runs;
    expect(runs[0]!.name).toBe("bert-2");
    expect(applyEvent(runs, ev("run.archived", "r2", {}), "vision").runs).toEqual([]);
  });

  it("an event for a run not loaded changes nothing", () => {
    const runs = applyEvent([], created, "vision").runs;
    expect(applyEvent(runs, ev("run.finished", "zz", { status: "finished", message: "" }), "vision").runs).toBe(runs);
  });

  it("a later search page does not duplicate a run the stream already added", () => {
    const live = applyEvent([], created, "vision").runs;
    const page = [{ ...live[0]!, name: "from server" }, { ...live[0]!, id: "r3" }];
    expect(appendPage(live, page).map((r) => [r.id, r.name])).toEqual([["r2", "bert"], ["r3", "bert"]]);
  });

  it("parses stream payloads and builds the stream URL", () => {
    expect(parseEvent(JSON.stringify(created))?.aggregate_id).toBe("r2");
    expect(parseEvent("not json")).toBeNull();
    expect(parseEvent("{}")).toBeNull();
    expect(streamUrl("a b")).toBe("/api/v1/events/stream?project=a+b&types=run.*");
  });
});

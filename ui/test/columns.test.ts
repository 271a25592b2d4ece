import { describe, expect, it } from "vitest";
import { compareCells, nextSort, sortRuns, toggleColumn, type Column } from "../src/lib/columns";
import type { Run } from "../src/lib/types";

const run = (id: string, params: Record<string, string> = {}, created_at = ""): Run => ({
  id, project: "p", experiment_id: "e", name: id, status: "finished", description: "", archived: false,
  created_at, updated_at: "", started_at: null, ended_at: null, created_by: "u", params, tags: {},
});

const lr: Column = { kind: "params", key: "lr" };

describe("sorting", () => {
  it("sorts params numerically, not as text", () => {
    const runs = [run("a", { lr: "10" }), run("b", { lr: "9" }), run("c", { lr: "0.5" })];
    expect(sortRuns(runs, { column: lr, dir: "asc" }, {}).map((r) => r.id)).toEqual(["c", "b", "a"]);
    expect(sortRuns(runs, { column: lr, dir: "desc" }, {}).map((r) => r.id)).toEqual(["a", "b", "c"]);
  });

  it("puts runs without the value last in both directions", () => {
    const runs = [run("none"), run("a", { lr: "1" }), run("b", { lr: "2" })];
    expect(sortRuns(runs, { column: lr, dir: "asc" }, {}).map((r) => r.id)).toEqual(["a", "b", "none"]);
    expect(sortRuns(runs, { column: lr, dir: "desc" }, {}).map((r) => r.id)).toEqual(["b", "a", "none"]);
  });

  it("sorts metrics from the summaries and text attributes as text", () => {
    const runs = [run("x", {}, "2026-01-02"), run("y", {}, "2026-01-01"), run("z", {}, "2026-01-03")];
    const m = { x: { loss: 0.2 }, y: { loss: "NaN" }, z: { loss: 0.1 } };
    expect(sortRuns(runs, { column: { kind: "metrics", key: "loss" }, dir: "asc" }, m).map((r) => r.id))
      .toEqual(["z", "x", "y"]);
    expect(sortRuns(runs, { column: { kind: "attr", key: "created_at" }, dir: "desc" }, {}).map((r) => r.id))
      .toEqual(["z", "x", "y"]);
  });

  it("is stable and does not change its input", () => {
    const runs = [run("a", { lr: "1" }), run("b", { lr: "1" }), run("c", { lr: "0" })];
    const sorted = sortRuns(runs, { column: lr, dir: "asc" }, {});
    expect(sorted.map((r) => r.id)).toEqual(["c", "a", "b"]);
    expect(runs.map((r) => r.id)).toEqual(["a", "b", "c"]);
  });

  it("a header click sorts ascending, then flips", () => {
    const s1 = nextSort(null, lr);
    expect(s1.dir).toBe("asc");
    expect(nextSort(s1, lr).dir).toBe("desc");
    expect(nextSort(nextSort(s1, lr), { kind: "attr", key: "name" }).dir).toBe("asc");
  });

  it("mixes numbers and text by falling back to text", () => {
    expect(compareCells("abc", "10", "asc")).toBeGreaterThan(0);
  });

  it("the column picker adds and removes", () => {
    const cols = toggleColumn([], lr);
    expect(cols).toEqual([lr]);
    expect(toggleColumn(cols, { kind: "params", key: "lr" })).toEqual([]);
  });
});

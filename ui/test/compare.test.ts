import { describe, expect, it } from "vitest";
import { alignSeries, commonKeys, compareRows, visibleRows } from "../src/lib/compare";
import { compareRuns, parseRoute, routePath } from "../src/lib/router";
import type { Run } from "../src/lib/types";

function run(id: string, params: Record<string, string>, tags: Record<string, string> = {}): Run {
  return { id, project: "p", experiment_id: "e", name: id, status: "finished", description: "", archived: false,
    created_at: "", updated_at: "", started_at: null, ended_at: null, created_by: "u", params, tags };
}

describe("compare table", () => {
  const runs = [run("a", { lr: "0.1", bs: "32" }, { team: "x" }), run("b", { lr: "0.10", bs: "64" }, { team: "x" }),
    run("c", { lr: "0.1" }, { team: "x" })];
  const metrics = { a: { loss: 0.5 }, b: { loss: 0.5 }, c: { loss: 0.4 } };
  const rows = compareRows(runs, metrics);

  it("has a row per key, values in run order, a missing value as null", () => {
    expect(rows.map((r) => `${r.section}.${r.key}`)).toEqual(["params.bs", "params.lr", "metrics.loss", "tags.team"]);
    expect(rows[0]!.values).toEqual(["32", "64", null]);
  });

  it("marks rows that differ (numbers compare as numbers, missing counts as different)", () => {
    const differs = Object.fromEntries(rows.map((r) => [r.key, r.differs]));
    expect(differs).toEqual({ bs: true, lr: false, loss: true, team: false });
  });

  it("the only-differences filter keeps just the differing rows", () => {
    expect(visibleRows(rows, false)).toHaveLength(4);
    expect(visibleRows(rows, true).map((r) => r.key)).toEqual(["bs", "loss"]);
  });

  it("text values compare as text", () => {
    const r = compareRows([run("a", { opt: "adam" }), run("b", { opt: "sgd" })], {});
    expect(r[0]!.differs).toBe(true);
  });
});

describe("compare charts", () => {
  it("charts the keys every run has, system keys last", () => {
    expect(commonKeys([["loss", "acc", "system/cpu"], ["system/cpu", "loss", "acc"], ["loss", "system/cpu"]]))
      .toEqual(["loss", "system/cpu"]);
    expect(commonKeys([])).toEqual([]);
  });

  it("aligns series on the union of steps", () => {
    expect(alignSeries([{ steps: [0, 2], values: [1, 3] }, { steps: [1, 2], values: [5, "NaN"] }]))
      .toEqual([[0, 1, 2], [1, null, 3], [null, 5, null]]);
  });

  it("reads and writes the compare route", () => {
    expect(compareRuns("?runs=a,b,,a,c")).toEqual(["a", "b", "c"]);
    const r = parseRoute("/projects/p/compare", "?runs=a,b");
    expect(r).toEqual({ page: "compare", project: "p", runs: ["a", "b"] });
    expect(routePath(r)).toBe("/projects/p/compare?runs=a,b");
    for (const path of ["/projects/p/models", "/projects/p/models/m%201", "/projects/p/jobs", "/projects/p/jobs/j1"]) {
      expect(routePath(parseRoute(path))).toBe(path);
    }
  });
});

describe("unified diff line numbers", () => {
  it("numbers old and new lines from each hunk header", async () => {
    const { numberedDiff } = await import("../src/lib/compare");
    const text = "--- a/train.py\n+++ b/train.py\n@@ -3,3 +3,4 @@\n ctx\n-old\n+new\n+more\n tail\n"
      + "Binary files a/x.bin and b/x.bin differ\n";
    const got = numberedDiff(text).map((l) => [l.kind, l.old, l.new]);
    expect(got).toEqual([["file", null, null], ["file", null, null], ["hunk", null, null], ["ctx", 3, 3],
      ["del", 4, null], ["add", null, 4], ["add", null, 5], ["ctx", 5, 6], ["note", null, null]]);
    expect(numberedDiff("")).toEqual([]);
  });
});

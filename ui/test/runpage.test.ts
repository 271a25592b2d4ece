import { describe, expect, it } from "vitest";
import {
  diffSummary, filterPackages, humanBytes, layoutLineage, nodeRoute, NOTE_TAG, splitMetricKeys, splitPackage, tailLines,
  visibleTags, type LineageGraph,
} from "../src/lib/runpage";
import { clampWeight, ema, firstTime, relativeSeconds } from "../src/lib/smooth";

describe("smoothing", () => {
  it("weight 0 is the series itself (a copy)", () => {
    const raw = [1, 5, 2];
    const out = ema(raw, 0);
    expect(out).toEqual(raw);
    expect(out).not.toBe(raw);
  });

  it("is debiased: a constant series stays constant from the first point", () => {
    for (const v of ema([3, 3, 3, 3], 0.9)) expect(v).toBeCloseTo(3, 12);
  });

  it("follows the TensorBoard formula", () => {
    const w = 0.5;
    const out = ema([0, 10], w);
    expect(out[0]).toBeCloseTo(0);
    // last = (0*0.5 + 0.5*0)*0.5 + 0.5*10 = 5; debias 1 - 0.25 = 0.75
    expect(out[1]).toBeCloseTo(5 / 0.75);
  });

  it("a heavier weight smooths a noisy series more", () => {
    const noisy = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 1 : -1));
    const spread = (xs: (number | null)[]) => {
      const tail = xs.slice(100) as number[];
      return Math.max(...tail) - Math.min(...tail);
    };
    expect(spread(ema(noisy, 0.9))).toBeLessThan(spread(ema(noisy, 0.5)));
    expect(spread(ema(noisy, 0.5))).toBeLessThan(spread(noisy));
  });

  it("keeps gaps and infinities where they are, without letting them into the average", () => {
    const out = ema([1, null, NaN, Infinity, 1], 0.8);
    expect(out[0]).toBeCloseTo(1);
    expect(out[1]).toBeNull();
    expect(out[2]).toBeNaN();
    expect(out[3]).toBe(Infinity);
    expect(out[4]).toBeCloseTo(1);
  });

  it("clamps the slider into 0..0.99", () => {
    expect(clampWeight(-1)).toBe(0);
    expect(clampWeight(NaN)).toBe(0);
    expect(clampWeight(1)).toBe(0.99);
    expect(clampWeight(0.6)).toBe(0.6);
  });

  it("relative time is seconds since the first point", () => {
    expect(firstTime([105, 100, 130])).toBe(100);
    expect(firstTime([])).toBeNull();
    expect(relativeSeconds([100, 101.5, 130], 100)).toEqual([0, 1.5, 30]);
  });
});

describe("run page", () => {
  it("hides the notes tag from the tags table", () => {
    expect(visibleTags({ a: "1", [NOTE_TAG]: "hello" })).toEqual({ a: "1" });
  });

  it("puts system/ keys in their own section", () => {
    expect(splitMetricKeys(["system/cpu_percent", "loss", "acc", "system/memory_percent", "systematic"]))
      .toEqual({ training: ["acc", "loss", "systematic"], system: ["system/cpu_percent", "system/memory_percent"] });
  });

  it("filters packages by every word, case-insensitively", () => {
    const pkgs = ["numpy==2.1.0", "NumExpr==2.9", "pandas==2.2.3"];
    expect(filterPackages(pkgs, "")).toEqual(pkgs);
    expect(filterPackages(pkgs, "num")).toEqual(["numpy==2.1.0", "NumExpr==2.9"]);
    expect(filterPackages(pkgs, "num 2.1")).toEqual(["numpy==2.1.0"]);
    expect(splitPackage("numpy==2.1.0")).toEqual(["numpy", "2.1.0"]);
    expect(splitPackage("odd")).toEqual(["odd", ""]);
  });

  it("keeps the log's last lines and says how many were cut", () => {
    expect(tailLines("a\nb\nc\n", 2)).toEqual({ lines: ["b", "c"], cut: 1 });
    expect(tailLines("a", 5)).toEqual({ lines: ["a"], cut: 0 });
  });

  it("summarises an uncommitted diff", () => {
    const diff = "diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1,2 @@\n-a\n+b\n+c\n" +
      "diff --git a/x y.txt b/x y.txt\n+++ b/x y.txt\n+z\n";
    expect(diffSummary(diff)).toEqual({ files: ["train.py", "x y.txt"], added: 3, removed: 1 });
    expect(diffSummary(null)).toEqual({ files: [], added: 0, removed: 0 });
  });

  it("prints bytes", () => {
    expect(humanBytes(512)).toBe("512 B");
    expect(humanBytes(16 * 1024 ** 3)).toBe("16.0 GiB");
    expect(humanBytes(null)).toBeNull();
  });
});

describe("lineage layout", () => {
  const g: LineageGraph = {
    nodes: [
      { id: "p/run:r1", ref: "run:r1", kind: "run", project: "p" },
      { id: "p/dataset:d@v1", ref: "dataset:d@v1", kind: "dataset_version", project: "p" },
      { id: "blob:abc", ref: "blob:abc", kind: "blob" },
      { id: "p/model:m@1", ref: "model:m@1", kind: "model_version", project: "p" },
      { id: "p/dataset:d", ref: "dataset:d", kind: "dataset", project: "p" },
    ],
    edges: [
      { src: "blob:abc", dst: "p/dataset:d@v1", type: "content_of" },
      { src: "p/dataset:d@v1", dst: "p/run:r1", type: "used" },
      { src: "p/run:r1", dst: "p/model:m@1", type: "produced" },
      { src: "p/dataset:d@v1", dst: "p/dataset:d", type: "version_of" },
    ],
  };

  it("lays inputs left of the run and outputs right of it", () => {
    const l = layoutLineage(g, "run:r1")!;
    const col = (ref: string) => l.placed.find((p) => p.node.ref === ref)?.col;
    expect(col("blob:abc")).toBe(0);
    expect(col("dataset:d@v1")).toBe(1);
    expect(col("run:r1")).toBe(2);
    expect(col("model:m@1")).toBe(3);
    expect(l.center).toBe(2);
    expect(l.cols).toBe(4);
    // version_of edges are drawn as a side column only when linked otherwise: here it is dropped.
    expect(col("dataset:d")).toBeUndefined();
    expect(l.edges.map((e) => e.type).sort()).toEqual(["content_of", "produced", "used"]);
  });

  it("is null when the run is not in the graph", () => {
    expect(layoutLineage(g, "run:nope")).toBeNull();
  });

  it("links datasets, models and runs to their pages", () => {
    expect(nodeRoute({ id: "", ref: "dataset:d@v1", kind: "dataset_version", project: "p" }, "x"))
      .toEqual({ page: "dataset", project: "p", name: "d" });
    expect(nodeRoute({ id: "", ref: "model:m@2", kind: "model_version" }, "x"))
      .toEqual({ page: "model", project: "x", model: "m" });
    expect(nodeRoute({ id: "", ref: "run:r9", kind: "run" }, "x")).toEqual({ page: "run", project: "x", runId: "r9" });
    expect(nodeRoute({ id: "", ref: "blob:abc", kind: "blob" }, "x")).toBeNull();
  });
});

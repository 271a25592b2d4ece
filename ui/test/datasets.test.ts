import { describe, expect, it } from "vitest";
import { diffSummary, filterFiles, formatBytes, formatChange, pageOf, runsOf, type DatasetDiff } from "../src/lib/datasets";

const e = (path: string, size = 1) => ({ path, kind: "file", size, digest: "d" });

describe("datasets", () => {
  it("formats byte counts", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MiB");
    expect(formatChange(4)).toBe("+4 B");
    expect(formatChange(-2048)).toBe("-2.0 KiB");
  });

  it("filters paths by every word, case-insensitively", () => {
    const files = [e("train/a.csv"), e("train/B.csv"), e("test/a.csv")];
    expect(filterFiles(files, "")).toEqual(files);
    expect(filterFiles(files, "TRAIN").map((f) => f.path)).toEqual(["train/a.csv", "train/B.csv"]);
    expect(filterFiles(files, "a.csv train").map((f) => f.path)).toEqual(["train/a.csv"]);
    expect(filterFiles(files, "nothing")).toEqual([]);
  });

  it("pages a listing and clamps the page", () => {
    const items = Array.from({ length: 25 }, (_, i) => i);
    expect(pageOf(items, 0, 10)).toMatchObject({ items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], pages: 3, first: 1, last: 10 });
    expect(pageOf(items, 2, 10)).toMatchObject({ items: [20, 21, 22, 23, 24], first: 21, last: 25 });
    expect(pageOf(items, 9, 10).page).toBe(2);
    expect(pageOf([], 0, 10)).toMatchObject({ items: [], pages: 1, first: 0, last: 0 });
  });

  it("summarises a diff with counts and sizes", () => {
    const d: DatasetDiff = {
      dataset: "x", from: 1, to: 2,
      added: [{ path: "c.txt", size: 10, kind: "file" }],
      removed: [],
      changed: [{ path: "a.txt", size_before: 2, size_after: 6, size_change: 4 }],
      unchanged: 3, size_before: 1024, size_after: 1038,
    };
    expect(diffSummary(d)).toBe("1 added (10 B), 0 removed, 1 changed (+4 B); 3 unchanged; 1.0 KiB → 1.0 KiB");
  });

  it("reads run ids from lineage nodes", () => {
    expect(runsOf([{ ref: "run:abc", kind: "run" }, { ref: "model:m@1", kind: "model_version" }, { ref: "run:abc", kind: "run" }]))
      .toEqual(["abc"]);
  });
});

import { describe, expect, it } from "vitest";
import { bulkSummary, parseTag, runBulk } from "../src/lib/bulk";

describe("bulk actions", () => {
  it("parses key=value tags and says what to fix", () => {
    expect(parseTag(" stage = candidate ")).toEqual({ key: "stage", value: "candidate" });
    expect(parseTag("expr=a=b")).toEqual({ key: "expr", value: "a=b" });
    expect(parseTag("empty=")).toEqual({ key: "empty", value: "" });
    expect(parseTag("novalue")).toHaveProperty("error");
    expect(parseTag("=x")).toHaveProperty("error");
    expect(parseTag("a/b=x")).toHaveProperty("error");
  });

  it("runs every id, keeps going past a failure and reports progress", async () => {
    const seen: number[] = [];
    const out = await runBulk(["a", "b", "c"], async (id) => {
      if (id === "b") throw new Error("run 'b' is archived");
    }, (done) => seen.push(done), 2);
    expect(out).toEqual([{ id: "a", ok: true }, { id: "b", ok: false, error: "run 'b' is archived" }, { id: "c", ok: true }]);
    expect(seen).toEqual([1, 2, 3]);
  });

  it("summarises outcomes", () => {
    expect(bulkSummary("Tagged", [{ id: "a", ok: true }, { id: "b", ok: true }])).toBe("Tagged 2 runs.");
    expect(bulkSummary("Archived", [{ id: "a", ok: true }])).toBe("Archived 1 run.");
    expect(bulkSummary("Archived", [{ id: "a", ok: true }, { id: "b", ok: false, error: "x" }, { id: "c", ok: false }]))
      .toBe("Archived 1 of 3 runs; 2 failed.");
  });
});

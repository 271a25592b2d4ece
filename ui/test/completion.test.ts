import { describe, expect, it } from "vitest";
import { applyCompletion, complete, quoteKey, vocabulary } from "../src/lib/completion";
import type { Run } from "../src/lib/types";

const run = (id: string, params: Record<string, string>, tags: Record<string, string>): Run => ({
  id, project: "p", experiment_id: "e", name: id, status: "running", description: "", archived: false,
  created_at: "", updated_at: "", started_at: null, ended_at: null, created_by: "u", params, tags,
});

const vocab = vocabulary(
  [run("a", { lr: "0.1", layers: "4" }, { team: "vision" }), run("b", { "batch size": "32", lr: "0.2" }, { "data.v": "2" })],
  { a: { val_loss: 0.3, loss: 0.5 }, b: { accuracy: 0.9 } },
);

describe("completion", () => {
  it("collects names from the loaded runs", () => {
    expect(vocab).toEqual({ params: ["batch size", "layers", "lr"], metrics: ["accuracy", "loss", "val_loss"],
      tags: ["data.v", "team"] });
  });

  it("completes a prefix to params./metrics./tags. and attributes", () => {
    expect(complete("par", 3, vocab).items).toEqual(["params."]);
    expect(complete("st", 2, vocab).items).toEqual(["status", "started_at"]);
    expect(complete("m", 1, vocab).items).toEqual(["metrics."]);
  });

  it("completes keys after the prefix, backquoting those that need it", () => {
    expect(complete("params.l", 8, vocab).items).toEqual(["params.layers", "params.lr"]);
    expect(complete("params.", 7, vocab).items).toEqual(["params.`batch size`", "params.layers", "params.lr"]);
    expect(complete("metrics.val", 11, vocab).items).toEqual(["metrics.val_loss"]);
    expect(complete("tags.d", 6, vocab).items).toEqual(["tags.`data.v`"]);
  });

  it("completes the word at the caret, not the end of the text", () => {
    const text = "params.lr = '0.1' and tags.t and status = 'x'";
    const c = complete(text, text.indexOf(" and status"), vocab);
    expect(c.items).toEqual(["tags.team"]);
    expect(text.slice(c.start, c.end)).toBe("tags.t");
  });

  it("offers nothing inside a string literal or after an operator", () => {
    expect(complete("name = 'par", 11, vocab).items).toEqual([]);
    expect(complete("name = ", 7, vocab).items).toEqual([]);
  });

  it("applies a completion in place", () => {
    const text = "tags.t = 'x'";
    const c = complete(text, 6, vocab);
    expect(applyCompletion(text, c, c.items[0]!)).toEqual({ text: "tags.team = 'x'", caret: 9 });
    const p = complete("par", 3, vocab);
    expect(applyCompletion("par", p, "params.")).toEqual({ text: "params.", caret: 7 });
    expect(applyCompletion("sta", complete("sta", 3, vocab), "status")).toEqual({ text: "status ", caret: 7 });
  });

  it("quotes keys that are not plain words", () => {
    expect(quoteKey("lr")).toBe("lr");
    expect(quoteKey("a.b")).toBe("`a.b`");
    expect(quoteKey("x-y")).toBe("`x-y`");
  });
});

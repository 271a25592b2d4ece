import { describe, expect, it } from "vitest";
import { clickRemove, IDLE, removeLabel } from "../src/lib/members";
import { parseTypes } from "../src/lib/webhooks";

describe("the two-step confirm", () => {
  it("arms on the first click and goes on the second click of the same item", () => {
    const first = clickRemove(IDLE, "bo");
    expect(first).toEqual({ state: { armed: "bo" }, go: false });
    expect(removeLabel(first.state, "bo")).toBe("Confirm: remove bo");
    expect(removeLabel(first.state, "al")).toBe("Remove");
    expect(clickRemove(first.state, "bo")).toEqual({ state: IDLE, go: true });
  });

  it("moves the arming to another item without acting", () => {
    expect(clickRemove({ armed: "bo" }, "al")).toEqual({ state: { armed: "al" }, go: false });
  });
});

describe("webhook event types", () => {
  it("splits on commas and spaces, each once", () => {
    expect(parseTypes(" run.*, model_version.*  run.* ")).toEqual(["run.*", "model_version.*"]);
    expect(parseTypes(" , ")).toEqual([]);
  });
});

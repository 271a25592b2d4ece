import { describe, expect, it } from "vitest";
import { applyMemberEvent, clickRemove, IDLE, removeLabel, type Member } from "../src/lib/members";
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

describe("member events applied in place", () => {
  const list: Member[] = [{ user: "bo", role: "viewer", updated_at: "t0" }];
  it("adds in user order, changes a role, removes", () => {
    const added = applyMemberEvent(list, { type: "member.added", data: { user: "al", role: "editor" }, time: "t1" });
    expect(added.map((m) => `${m.user}:${m.role}`)).toEqual(["al:editor", "bo:viewer"]);
    const changed = applyMemberEvent(added, { type: "member.added", data: { user: "bo", role: "admin" }, time: "t2" });
    expect(changed.find((m) => m.user === "bo")).toEqual({ user: "bo", role: "admin", updated_at: "t2" });
    expect(applyMemberEvent(changed, { type: "member.removed", data: { user: "al" }, time: "t3" }).map((m) => m.user)).toEqual(["bo"]);
  });
  it("ignores what it cannot read", () => {
    expect(applyMemberEvent(list, { type: "member.added", data: { user: "al", role: "owner" }, time: "t" })).toBe(list);
    expect(applyMemberEvent(list, { type: "member.added", data: {}, time: "t" })).toBe(list);
  });
});

import { describe, expect, it } from "vitest";
import { aliasProblem, canRemoveAlias, canSetAlias, describeChange, hasAliasControls } from "../src/lib/models";

describe("alias controls by role", () => {
  it("a viewer gets none", () => {
    expect(hasAliasControls("viewer")).toBe(false);
    expect(canSetAlias("viewer", "staging")).toBe(false);
    expect(canRemoveAlias("viewer")).toBe(false);
    expect(hasAliasControls(null)).toBe(false);
  });

  it("an editor points any alias but production (any case), and removes none", () => {
    expect(hasAliasControls("editor")).toBe(true);
    expect(canSetAlias("editor", "staging")).toBe(true);
    expect(canSetAlias("editor", "production")).toBe(false);
    expect(canSetAlias("editor", "Production")).toBe(false);
    expect(canRemoveAlias("editor")).toBe(false);
    expect(aliasProblem("editor", "production")).toMatch(/admin/);
  });

  it("an admin does everything", () => {
    expect(canSetAlias("admin", "production")).toBe(true);
    expect(canRemoveAlias("admin")).toBe(true);
    expect(aliasProblem("admin", "production")).toBeNull();
  });

  it("says what is wrong with a bad alias name", () => {
    expect(aliasProblem("admin", "1st")).toMatch(/starts with a letter/);
    expect(aliasProblem("admin", "a b")).toMatch(/letters, digits/);
    expect(aliasProblem("admin", "")).not.toBeNull();
  });

  it("describes history lines", () => {
    const base = { seq: 1, alias: "staging", time: "t", actor: "a" };
    expect(describeChange({ ...base, action: "set", version: 3, previous_version: 2 })).toBe("set to v3 (was v2)");
    expect(describeChange({ ...base, action: "set", version: 1, previous_version: null })).toBe("set to v1");
    expect(describeChange({ ...base, action: "removed", version: 3, previous_version: null })).toBe("removed (was v3)");
  });
});

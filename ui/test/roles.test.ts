import { describe, expect, it } from "vitest";
import { can, roleIn } from "../src/lib/roles";
import { parseRoute, routePath } from "../src/lib/router";

describe("roles", () => {
  it("ranks viewer < editor < admin", () => {
    expect(can("viewer", "view")).toBe(true);
    expect(can("viewer", "run.edit")).toBe(false);
    expect(can("editor", "run.edit")).toBe(true);
    expect(can("editor", "alias.move")).toBe(false);
    expect(can("admin", "alias.move")).toBe(true);
    expect(can(null, "view")).toBe(false);
  });

  it("site admins are admins of every project", () => {
    const s = { user: "u", kind: "user", site_admin: false, projects: { a: "viewer" as const }, csrf: "" };
    expect(roleIn(s, "a")).toBe("viewer");
    expect(roleIn(s, "b")).toBeNull();
    expect(roleIn({ ...s, site_admin: true }, "b")).toBe("admin");
  });
});

describe("routes", () => {
  it("round-trips every page", () => {
    for (const path of ["/", "/projects", "/projects/my%20p/runs", "/projects/p/runs/r1"]) {
      expect(routePath(parseRoute(path))).toBe(path);
    }
    expect(parseRoute("/projects/my%20p/runs")).toEqual({ page: "runs", project: "my p" });
    expect(parseRoute("/nope").page).toBe("notfound");
  });
});

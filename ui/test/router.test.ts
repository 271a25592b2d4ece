import { describe, expect, it } from "vitest";
import { mlflowLinkPath, parseRoute, routePath } from "../src/lib/router";

describe("router", () => {
  it("round-trips every page's path", () => {
    const paths = [
      "/projects", "/projects/p/runs", "/projects/p/runs/r1", "/projects/p/experiments",
      "/projects/p/members", "/projects/p/datasets", "/projects/p/datasets/images",
      "/projects/p/sweeps", "/projects/p/sweeps/s1", "/projects/p/deployments",
      "/projects/p/deployments/fraud", "/projects/p/webhooks", "/agents", "/audit", "/tokens",
    ];
    for (const path of paths) {
      const r = parseRoute(path);
      expect(r.page).not.toBe("notfound");
      expect(routePath(r)).toBe(path);
    }
  });

  it("decodes names and keeps unknown paths as not found", () => {
    expect(parseRoute("/projects/p/datasets/a%20b")).toEqual({ page: "dataset", project: "p", name: "a b" });
    expect(parseRoute("/projects/p/nothing").page).toBe("notfound");
    expect(parseRoute("/agents/extra").page).toBe("notfound");
  });
});

describe("MLflow's View run links", () => {
  it("go to the run, the experiment's runs, or the runs table for experiment 0", () => {
    expect(mlflowLinkPath("#/experiments/7/runs/abc")).toBe("/projects/default/runs/abc");
    expect(mlflowLinkPath("#/experiments/0")).toBe("/projects/default/runs");
    expect(mlflowLinkPath("#/experiments/x'y", "vision"))
      .toBe(`/projects/vision/runs?${new URLSearchParams({ filter: "experiment_id = 'x\\'y'" })}`);
    expect(mlflowLinkPath("#/experiments/7/runs/abc?o=1")).toBe("/projects/default/runs/abc");
  });

  it("leave other fragments alone", () => {
    expect(mlflowLinkPath("")).toBeNull();
    expect(mlflowLinkPath("#/models/m")).toBeNull();
    expect(mlflowLinkPath("#top")).toBeNull();
  });
});

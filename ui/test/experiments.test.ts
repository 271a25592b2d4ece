import { describe, expect, it } from "vitest";
import { experimentFilter, initialFilter, nameProblem, runsHref } from "../src/lib/experiments";
import { can } from "../src/lib/roles";

describe("experiments", () => {
  it("filters the runs table to one experiment, through ?filter=", () => {
    expect(experimentFilter("e1")).toBe("experiment_id = 'e1'");
    expect(experimentFilter("o'k")).toBe("experiment_id = 'o\\'k'");
    const href = runsHref("my proj", experimentFilter("e1"));
    expect(href.startsWith("/projects/my%20proj/runs?filter=")).toBe(true);
    expect(initialFilter(href.slice(href.indexOf("?")))).toBe("experiment_id = 'e1'");
    expect(initialFilter("")).toBe("");
  });

  it("checks names", () => {
    expect(nameProblem("  ")).toMatch(/name/);
    expect(nameProblem("x".repeat(257))).toMatch(/256/);
    expect(nameProblem("baseline")).toBeNull();
  });

  it("gives editors create/rename and admins archive", () => {
    expect(can("viewer", "experiment.edit")).toBe(false);
    expect(can("editor", "experiment.edit")).toBe(true);
    expect(can("editor", "experiment.archive")).toBe(false);
    expect(can("admin", "experiment.archive")).toBe(true);
    expect(can("editor", "run.tag")).toBe(true);
    expect(can("editor", "run.archive")).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { historyUrl, pointsFor, stepRange, stepsInTimeRange, toNumber, xBounds } from "../src/lib/zoom";

describe("zoom", () => {
  it("asks for the whole series at first", () => {
    expect(historyUrl("my proj", "r1", "val/loss", 1600)).toBe(
      "/api/v1/metrics/projects/my%20proj/runs/r1/metrics?key=val%2Floss&points=1600");
  });

  it("a zoom asks for the zoomed step range, at the chart's width in points", () => {
    const r = stepRange(1200.4, 5300.2);
    expect(r).toEqual({ min: 1200, max: 5301 });
    const url = new URL(historyUrl("p", "r", "loss", pointsFor(800), r), "http://x");
    expect(Object.fromEntries(url.searchParams)).toEqual({ key: "loss", points: "1600", step_min: "1200", step_max: "5301" });
  });

  it("orders reversed bounds and rejects non-finite ones", () => {
    expect(stepRange(9, 3)).toEqual({ min: 3, max: 9 });
    expect(stepRange(NaN, 3)).toBeNull();
  });

  it("points are bounded", () => {
    expect(pointsFor(10)).toBe(200);
    expect(pointsFor(100_000)).toBe(10_000);
  });

  it("maps a time zoom to the steps in it", () => {
    expect(stepsInTimeRange([0, 10, 20, 30], [100, 101, 102, 103], 100.5, 102.5)).toEqual({ min: 10, max: 20 });
    expect(stepsInTimeRange([0, 10], [100, 101], 200, 300)).toBeNull();
  });

  it("the zoomed x scale spans the range's points on either axis", () => {
    const steps = [0, 10, 20, 30];
    expect(xBounds(steps, steps, { min: 5, max: 25 })).toEqual([10, 20]);
    expect(xBounds(steps, [100, 101, 102, 103], { min: 10, max: 30 })).toEqual([101, 103]);
    expect(xBounds(steps, steps, { min: 11, max: 19 })).toBeNull();
  });

  it("reads JSON's NaN and infinities", () => {
    expect(toNumber("Infinity")).toBe(Infinity);
    expect(toNumber("-Infinity")).toBe(-Infinity);
    expect(toNumber("NaN")).toBeNull();
    expect(toNumber(1.5)).toBe(1.5);
  });
});

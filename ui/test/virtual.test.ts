import { describe, expect, it } from "vitest";
import { revealRow, visibleWindow } from "../src/lib/virtual";

describe("virtual window", () => {
  it("renders only the rows in view plus the overscan", () => {
    const w = visibleWindow(0, 300, 30, 10_000, 5);
    expect(w).toEqual({ start: 0, end: 15, offset: 0, total: 300_000 });
  });

  it("follows the scroll position", () => {
    const w = visibleWindow(30_000, 300, 30, 10_000, 5);
    expect(w.start).toBe(995);
    expect(w.end).toBe(1015);
    expect(w.offset).toBe(995 * 30);
    expect(w.end - w.start).toBeLessThan(40);
  });

  it("clamps at the bottom and for over-scroll", () => {
    const w = visibleWindow(10_000_000, 300, 30, 10_000, 5);
    expect(w.end).toBe(10_000);
    expect(w.start).toBe(10_000 - 10 - 5);
    expect(visibleWindow(-50, 300, 30, 100, 0).start).toBe(0);
  });

  it("a short table renders whole", () => {
    expect(visibleWindow(0, 600, 30, 7)).toEqual({ start: 0, end: 7, offset: 0, total: 210 });
    expect(visibleWindow(0, 600, 30, 0)).toEqual({ start: 0, end: 0, offset: 0, total: 0 });
  });

  it("reveals a focused row with the least scroll", () => {
    expect(revealRow(5, 0, 300, 30)).toBe(0);
    expect(revealRow(10, 0, 300, 30)).toBe(30);
    expect(revealRow(2, 300, 300, 30)).toBe(60);
  });
});

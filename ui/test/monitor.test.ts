import { describe, expect, it } from "vitest";
import { describeCell, describeCondition, driftColour, driftLevel, DRIFT_STEPS, groupAlerts, hasLatency, heatmap, NO_DRIFT_FILL, windowSeries, type Alert } from "../src/lib/monitor";

const w = (start: number, end: number, requests: number, errors: number, p95: number | null = null) => ({
  start, end, requests, errors, error_rate: requests ? errors / requests : null,
  latency_p50_ms: p95 == null ? null : p95 / 2, latency_p95_ms: p95, latency_p99_ms: p95 == null ? null : p95 * 2,
});

describe("windowSeries", () => {
  it("sorts by start and turns counts into per-second rates of each window's length", () => {
    const s = windowSeries([w(120, 180, 30, 6, 10), w(0, 60, 120, 0), w(60, 180, 60, 3)]);
    expect(s.t).toEqual([0, 60, 120]);
    expect(s.requestsPerS).toEqual([2, 0.5, 0.5]);
    expect(s.errorsPerS).toEqual([0, 0.025, 0.1]);
    expect(s.p95).toEqual([null, null, 10]);
    expect(hasLatency(s)).toBe(true);
    expect(hasLatency(windowSeries([w(0, 60, 1, 0)]))).toBe(false);
  });
  it("skips a window without a length", () => {
    expect(windowSeries([w(5, 5, 1, 0)]).t).toEqual([]);
  });
});

describe("driftLevel", () => {
  it("puts the threshold at one half for distances and p-values alike", () => {
    expect(driftLevel({ method: "wasserstein", score: 0.1, threshold: 0.1, drifted: true })).toBe(0.5);
    expect(driftLevel({ method: "wasserstein", score: 0.05, threshold: 0.1, drifted: false })).toBe(0.25);
    expect(driftLevel({ method: "wasserstein", score: 5, threshold: 0.1, drifted: true })).toBe(1);
    expect(driftLevel({ method: "ks", score: 1, threshold: 0.05, drifted: false })).toBe(0);
    expect(driftLevel({ method: "ks", score: 0.05, threshold: 0.05, drifted: false })).toBe(0.5);
    expect(driftLevel({ method: "ks", score: 0.00005, threshold: 0.05, drifted: true })).toBeCloseTo(1);
    expect(driftLevel({ method: "ks", score: 0, threshold: 0.05, drifted: true })).toBe(1);
    expect(driftLevel({ method: "ks", score: null, threshold: 0.05, drifted: false })).toBeNull();
  });
  it("colours calm below the threshold and warm from it", () => {
    expect(driftColour(0)).toBe(DRIFT_STEPS[0]);
    expect(driftColour(0.4)).toBe(DRIFT_STEPS[1]);
    expect(driftColour(0.5)).toBe(DRIFT_STEPS[2]);
    expect(driftColour(1)).toBe(DRIFT_STEPS[3]);
    expect(driftColour(null)).toBe(NO_DRIFT_FILL);
  });
});

describe("heatmap", () => {
  it("lays out columns by name against windows oldest first, with gaps as empty cells", () => {
    const h = heatmap([
      { start: 60, end: 120, drift: { share: 0.5, columns: { b: { method: "ks", score: 0.001, threshold: 0.05, drifted: true } } } },
      { start: 0, end: 60, drift: { share: 0, columns: { a: { method: "ks", score: 0.9, threshold: 0.05, drifted: false },
        b: { method: "ks", score: 0.5, threshold: 0.05, drifted: false } } } },
      { start: 120, end: 180, drift: null },
    ]);
    expect(h.columns).toEqual(["a", "b"]);
    expect(h.times.map((t) => t.start)).toEqual([0, 60, 120]);
    expect(h.rows[0]!.map((c) => c.cell?.score ?? null)).toEqual([0.9, null, null]);
    expect(h.rows[1]![1]!.cell?.drifted).toBe(true);
    expect(describeCell(h.rows[1]![1]!)).toBe("b: drifted, ks p-value 0.001 (threshold 0.05)");
    expect(describeCell(h.rows[0]![2]!)).toBe("a: no drift figure for this window");
  });
});

describe("alerts", () => {
  const alert = (seq: number, state: string): Alert => ({ rule_id: "r", state, name: "n", metric: "requests", column: null,
    value: 1, threshold: 0, comparison: ">", window: { size: "1m", start: 0, end: 60 }, fired_at: "", fired_seq: seq, resolved_at: null });
  it("puts firing first, each group newest first", () => {
    const g = groupAlerts([alert(1, "open"), alert(3, "resolved"), alert(2, "open"), alert(4, "resolved")]);
    expect(g.firing.map((a) => a.fired_seq)).toEqual([2, 1]);
    expect(g.resolved.map((a) => a.fired_seq)).toEqual([4, 3]);
  });
  it("says a rule's condition", () => {
    expect(describeCondition({ metric: "drift_score", column: "amount", comparison: "<", threshold: 0.05 })).toBe("drift_score[amount] < 0.05");
    expect(describeCondition({ metric: "requests", comparison: ">=", threshold: 1 })).toBe("requests >= 1");
  });
});

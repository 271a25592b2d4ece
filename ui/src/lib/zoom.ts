// Metric charts ask for as many points as the chart has pixels; a zoom asks again for just the
// zoomed step range, so the metrics service downsamples only that range and every spike in it
// shows (docs/metrics.md; `step_min`/`step_max` in docs/ui.md).

export interface StepRange {
  min: number;
  max: number;
}

/** Points to request for a plot this many CSS pixels wide (minmax keeps 2 per bucket). */
export function pointsFor(widthPx: number): number {
  return Math.min(10_000, Math.max(200, Math.round(widthPx) * 2));
}

/** The integer step range covering a zoomed x range (x is a step axis), or null for "all". */
export function stepRange(xMin: number, xMax: number): StepRange | null {
  if (!Number.isFinite(xMin) || !Number.isFinite(xMax)) return null;
  const lo = Math.floor(Math.min(xMin, xMax));
  const hi = Math.ceil(Math.max(xMin, xMax));
  return { min: lo, max: hi };
}

/** The history URL for one key, over a step range when zoomed. */
export function historyUrl(project: string, runId: string, key: string, points: number,
                           range: StepRange | null = null): string {
  const q = new URLSearchParams({ key, points: String(points) });
  if (range) {
    q.set("step_min", String(range.min));
    q.set("step_max", String(range.max));
  }
  return `/api/v1/metrics/projects/${encodeURIComponent(project)}/runs/${encodeURIComponent(runId)}/metrics?${q}`;
}

/** JSON carries NaN and infinities as strings; the chart wants numbers (NaN -> a gap). */
export function toNumber(v: number | string | null | undefined): number | null {
  if (typeof v === "number") return v;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return null;
}

/** On a time x axis, the step range of the loaded points whose time is in [t0, t1] (a zoom). */
export function stepsInTimeRange(steps: number[], times: number[], t0: number, t1: number): StepRange | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < steps.length; i++) {
    const t = times[i]!;
    if (t >= t0 && t <= t1) {
      lo = Math.min(lo, steps[i]!);
      hi = Math.max(hi, steps[i]!);
    }
  }
  return lo <= hi ? { min: lo, max: hi } : null;
}

/** The x bounds of the loaded points whose step is in `range` (the chart's x scale when zoomed,
 * on either axis), or null when none is. */
export function xBounds(steps: number[], xs: number[], range: StepRange): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!;
    if (s >= range.min && s <= range.max) {
      lo = Math.min(lo, xs[i]!);
      hi = Math.max(hi, xs[i]!);
    }
  }
  return lo < hi ? [lo, hi] : null;
}

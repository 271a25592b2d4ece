// Smoothing for metric charts: the exponential moving average TensorBoard and W&B draw over a
// noisy series, with the same zero-debiasing, so the first points are not pulled towards 0.

/** The smoothing weights a slider offers: 0 (off) to 0.99 (very smooth). */
export const SMOOTH_MAX = 0.99;

/** Clamp a slider value into [0, SMOOTH_MAX]; anything not a finite number is 0 (off). */
export function clampWeight(w: number): number {
  if (!Number.isFinite(w) || w <= 0) return 0;
  return Math.min(SMOOTH_MAX, w);
}

/**
 * The debiased exponential moving average of `values` with weight `w` (0: the series itself).
 * A gap (null, NaN) or an infinity is kept as it is in the output and does not enter the
 * average, so a spike to infinity does not flatten the rest of the curve; the average carries on
 * across the gap. The output has the same length as the input.
 */
export function ema(values: (number | null)[], w: number): (number | null)[] {
  const weight = clampWeight(w);
  if (weight === 0) return values.slice();
  const out: (number | null)[] = new Array(values.length);
  let last = 0;
  let seen = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = v ?? null;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    seen += 1;
    out[i] = last / (1 - Math.pow(weight, seen));
  }
  return out;
}

/** X values in seconds since `origin` (the run's first point): the "relative" x axis. */
export function relativeSeconds(timestamps: number[], origin: number): number[] {
  return timestamps.map((t) => t - origin);
}

/** The earliest finite timestamp, or null for none (the origin of a relative axis). */
export function firstTime(timestamps: number[]): number | null {
  let lo = Infinity;
  for (const t of timestamps) if (Number.isFinite(t) && t < lo) lo = t;
  return lo === Infinity ? null : lo;
}

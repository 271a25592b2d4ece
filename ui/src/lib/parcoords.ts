// Parallel coordinates: one vertical axis per param (and one for the metric), one polyline per run
// or trial. Pure functions (axes, positions, colours, ticks), shared by the compare and sweep pages
// and the tests; components/ParallelCoords.tsx only draws what these answer.

export type PcValue = string | number | boolean | null | undefined;

export interface PcAxis {
  name: string;
  kind: "numeric" | "categorical";
  /** numeric: the range the axis spans (bottom, top). */
  min?: number;
  max?: number;
  /** numeric: scaled logarithmically (only when min > 0). */
  log?: boolean;
  /** categorical: the values, bottom to top, evenly spaced. */
  values?: string[];
}

/** What a sweep's table says of a dimension; it wins over what the rows hold (a range the trials have
 * not reached yet still spans the axis). */
export interface PcHint { name: string; type?: string; min?: number; max?: number; log?: boolean; values?: PcValue[] }

const asNumber = (v: PcValue): number | null => {
  if (v === null || v === undefined || v === "" || typeof v === "boolean") return null;
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? n : null;
};
const present = (v: PcValue) => v !== null && v !== undefined && v !== "";

function sortedValues(vs: PcValue[]): string[] {
  const uniq = [...new Set(vs.filter(present).map(String))];
  const nums = uniq.every((v) => asNumber(v) !== null);
  return nums ? uniq.sort((a, b) => Number(a) - Number(b)) : uniq.sort();
}

/** One axis for `name`: numeric when every value present is a finite number (params are stored as
 * strings, so "0.1" counts), categorical otherwise. */
export function makeAxis(name: string, values: PcValue[], hint?: PcHint): PcAxis {
  if (hint && (hint.values || hint.type === "categorical")) {
    return { name, kind: "categorical", values: sortedValues([...(hint.values ?? []), ...values]) };
  }
  const got = values.filter(present);
  if (got.length > 0 && got.some((v) => asNumber(v) === null)) return { name, kind: "categorical", values: sortedValues(got) };
  const nums = got.map(asNumber) as number[];
  let min = Math.min(...nums, ...(hint?.min !== undefined ? [hint.min] : []));
  let max = Math.max(...nums, ...(hint?.max !== undefined ? [hint.max] : []));
  if (!Number.isFinite(min) || !Number.isFinite(max)) { min = 0; max = 1; }
  return { name, kind: "numeric", min, max, log: !!hint?.log && min > 0 };
}

/** Where `v` sits on `axis`, 0 (bottom) to 1 (top); null when the run has no value there. A numeric
 * axis whose values are all the same puts them in the middle, as does a one-value category. */
export function position(axis: PcAxis, v: PcValue): number | null {
  if (!present(v)) return null;
  if (axis.kind === "categorical") {
    const values = axis.values ?? [];
    const i = values.indexOf(String(v));
    if (i < 0) return null;
    return values.length === 1 ? 0.5 : i / (values.length - 1);
  }
  const n = asNumber(v);
  if (n === null) return null;
  const min = axis.min ?? 0;
  const max = axis.max ?? 1;
  if (max === min) return 0.5;
  const t = axis.log && n > 0 ? (Math.log(n) - Math.log(min)) / (Math.log(max) - Math.log(min)) : (n - min) / (max - min);
  return Math.min(1, Math.max(0, t));
}

/** Labels along an axis: every category, or the bottom, middle and top of a numeric range. */
export function ticks(axis: PcAxis): { label: string; at: number }[] {
  if (axis.kind === "categorical") return (axis.values ?? []).map((v) => ({ label: v, at: position(axis, v)! }));
  const min = axis.min ?? 0;
  const max = axis.max ?? 1;
  if (min === max) return [{ label: formatNumber(min), at: 0.5 }];
  const mid = axis.log && min > 0 ? Math.sqrt(min * max) : (min + max) / 2;
  return [min, mid, max].map((v) => ({ label: formatNumber(v), at: position(axis, v)! }));
}

export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

/** The params worth an axis: those whose values are not all the same across the rows (a row
 * without the param counts as a different value). */
export function differingKeys(rows: Record<string, PcValue>[], keys: string[]): string[] {
  return keys.filter((k) => {
    const seen = new Set(rows.map((r) => (present(r[k]) ? String(r[k]) : "\u0000missing")));
    return seen.size > 1;
  });
}

// Two ends that keep 3:1 contrast on white (as the chart colours do) and stay apart for common
// colour blindness; the blend between them stays dark enough.
const LOW: [number, number, number] = [0x0b, 0x57, 0xb5];
const HIGH: [number, number, number] = [0xc2, 0x41, 0x0c];
export const NO_VALUE_COLOUR = "#6b7280";

/** The line colour for a metric at `t` (0..1 along the metric's axis); grey without a value. */
export function colourAt(t: number | null): string {
  if (t === null || !Number.isFinite(t)) return NO_VALUE_COLOUR;
  const c = LOW.map((lo, i) => Math.round(lo + (HIGH[i]! - lo) * Math.min(1, Math.max(0, t))));
  return `#${c.map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

export interface PcLine { id: string; label: string; points: (number | null)[]; colour: string; t: number | null }

/** One polyline per row: its position on every axis and its colour (by the metric, the last axis). */
export function lines(rows: { id: string; label: string; values: Record<string, PcValue> }[], axes: PcAxis[],
  metric: string): PcLine[] {
  const metricAxis = axes.find((a) => a.name === metric);
  return rows.map((r) => {
    const t = metricAxis ? position(metricAxis, r.values[metric]) : null;
    return { id: r.id, label: r.label, points: axes.map((a) => position(a, r.values[a.name])), colour: colourAt(t), t };
  });
}

/** An SVG path through the points present (a missing value breaks the line: "M" starts again). */
export function pathFor(points: (number | null)[], xs: number[], top: number, height: number): string {
  let d = "";
  let pen = false;
  points.forEach((p, i) => {
    if (p === null) { pen = false; return; }
    const y = top + (1 - p) * height;
    d += `${pen ? "L" : "M"}${xs[i]!.toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  });
  return d;
}

// Pure logic of the deployment page's monitoring: the monitor's closed windows as chart arrays,
// drift per column and window as heatmap cells with a colour scale, and alerts by state. Kept
// free of the DOM so Vitest checks each rule (ui/test/monitor.test.ts).

/** A closed window as GET .../deployments/{name}/windows answers it (docs/monitor.md). */
export interface MonitorWindow {
  start: number;
  end: number;
  requests: number;
  errors: number;
  error_rate: number | null;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  latency_p99_ms: number | null;
}

export interface ColumnDrift { method: string; score: number | null; threshold: number; drifted: boolean; p_value?: number | null }
export interface DriftWindow { start: number; end: number; drift: { share: number; columns: Record<string, ColumnDrift> } | null }

/** Chart arrays (uPlot's aligned data): x is the window's start in unix seconds; rates are per
 * second of the window, so windows of any size (or merged groups) read the same. */
export interface Series {
  t: number[];
  requestsPerS: number[];
  errorsPerS: number[];
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
}

export function windowSeries(windows: readonly MonitorWindow[]): Series {
  const out: Series = { t: [], requestsPerS: [], errorsPerS: [], p50: [], p95: [], p99: [] };
  for (const w of [...windows].sort((a, b) => a.start - b.start)) {
    const seconds = w.end - w.start;
    if (!(seconds > 0)) continue; // a malformed row: no rate to draw
    out.t.push(w.start);
    out.requestsPerS.push(w.requests / seconds);
    out.errorsPerS.push(w.errors / seconds);
    out.p50.push(w.latency_p50_ms);
    out.p95.push(w.latency_p95_ms);
    out.p99.push(w.latency_p99_ms);
  }
  return out;
}

/** Whether a window series has any latency figure (else the latency chart says so instead). */
export function hasLatency(s: Series): boolean {
  return [...s.p50, ...s.p95, ...s.p99].some((v) => v != null);
}

// ks and chisquare score with a p-value (drift below the threshold); the others with a distance
// (drift at or above it): docs/monitor.md "Drift".
const P_VALUE_METHODS = new Set(["ks", "chisquare"]);

/** How strongly a column drifted, 0..1 with the method's threshold at exactly 0.5: below 0.5 no
 * drift, above it drift (p-values: three decades under the threshold is the top). Null: no score. */
export function driftLevel(c: ColumnDrift): number | null {
  const s = c.score, t = c.threshold;
  if (s == null || !Number.isFinite(s) || !(t > 0)) return null;
  if (P_VALUE_METHODS.has(c.method)) {
    if (s >= t) return t >= 1 ? 0 : 0.5 * Math.min(1, (1 - s) / (1 - t));
    return 0.5 + 0.5 * Math.min(1, Math.log10(t / Math.max(s, 1e-300)) / 3);
  }
  if (s < t) return 0.5 * Math.max(0, s / t);
  return 0.5 + 0.5 * Math.min(1, (s - t) / t);
}

/** The heatmap's colour steps, calm to strong drift; text colours keep AA contrast on each. */
export interface Swatch { upTo?: number; fill: string; text: string; label: string }
export const DRIFT_STEPS: readonly Swatch[] = [
  { upTo: 0.25, fill: "#e8f1fb", text: "#1b1f24", label: "far from the threshold" },
  { upTo: 0.5, fill: "#b9d3ee", text: "#1b1f24", label: "near the threshold" },
  { upTo: 0.75, fill: "#f3b27a", text: "#1b1f24", label: "drift" },
  { upTo: 1.0, fill: "#a4161a", text: "#ffffff", label: "strong drift" },
];
export const NO_DRIFT_FILL: Swatch = { fill: "#f4f6f8", text: "#4b5563", label: "no drift figure" };

export function driftColour(level: number | null): Swatch {
  if (level == null) return NO_DRIFT_FILL;
  // the threshold (0.5) itself is drift for distances, so it belongs to the upper half
  const step = DRIFT_STEPS.find((s, i) => (i === 1 ? level < s.upTo! : level <= s.upTo!));
  return step ?? DRIFT_STEPS[DRIFT_STEPS.length - 1]!;
}

export interface HeatCell { column: string; start: number; end: number; cell: ColumnDrift | null; level: number | null }
export interface Heatmap { columns: string[]; times: { start: number; end: number }[]; rows: HeatCell[][] }

/** Columns (rows of the heatmap, sorted by name) x windows (oldest first); a window without a
 * drift figure for a column is a cell with `cell: null`. */
export function heatmap(windows: readonly DriftWindow[]): Heatmap {
  const sorted = [...windows].sort((a, b) => a.start - b.start);
  const names = new Set<string>();
  for (const w of sorted) for (const c of Object.keys(w.drift?.columns ?? {})) names.add(c);
  const columns = [...names].sort();
  const times = sorted.map((w) => ({ start: w.start, end: w.end }));
  const rows = columns.map((column) => sorted.map((w) => {
    const cell = w.drift?.columns[column] ?? null;
    return { column, start: w.start, end: w.end, cell, level: cell ? driftLevel(cell) : null };
  }));
  return { columns, times, rows };
}

/** One cell's words (the tooltip, the focus text and the table alternative say the same). */
export function describeCell(c: HeatCell): string {
  if (!c.cell || c.cell.score == null) return `${c.column}: no drift figure for this window`;
  const verdict = c.cell.drifted ? "drifted" : "no drift";
  const kind = P_VALUE_METHODS.has(c.cell.method) ? "p-value" : "distance";
  return `${c.column}: ${verdict}, ${c.cell.method} ${kind} ${formatNumber(c.cell.score)} (threshold ${formatNumber(c.cell.threshold)})`;
}

export function formatNumber(v: number | null | undefined, digits = 3): string {
  if (v == null || !Number.isFinite(v)) return "none";
  if (v !== 0 && Math.abs(v) < 10 ** -digits) return v.toExponential(1);
  return String(Number(v.toFixed(digits)));
}

/** A window's time as the page prints it (UTC, minutes; seconds only when not whole minutes). */
export function windowTime(unix: number): string {
  const iso = new Date(unix * 1000).toISOString();
  return unix % 60 === 0 ? `${iso.slice(0, 16).replace("T", " ")} UTC` : `${iso.slice(0, 19).replace("T", " ")} UTC`;
}

export interface Alert {
  rule_id: string;
  state: string; // "open" while firing, else resolved
  name: string;
  metric: string;
  column: string | null;
  value: number | null;
  threshold: number;
  comparison: string;
  window: { size: string; start: number; end: number };
  fired_at: string;
  fired_seq: number;
  resolved_at: string | null;
}

/** Firing alerts first, then resolved, each newest first. */
export function groupAlerts(alerts: readonly Alert[]): { firing: Alert[]; resolved: Alert[] } {
  const newest = (a: Alert, b: Alert) => b.fired_seq - a.fired_seq;
  return {
    firing: alerts.filter((a) => a.state === "open").sort(newest),
    resolved: alerts.filter((a) => a.state !== "open").sort(newest),
  };
}

/** "latency_p95_ms > 250" or "drift_score[amount] < 0.05". */
export function describeCondition(r: { metric: string; column?: string | null; comparison: string; threshold: number }): string {
  return `${r.metric}${r.column ? `[${r.column}]` : ""} ${r.comparison} ${formatNumber(r.threshold)}`;
}

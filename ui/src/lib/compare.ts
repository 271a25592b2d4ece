// Compare N runs: the side-by-side table (params, metrics, tags; a row differs when the runs do
// not all hold the same value, a missing value counting as different) and the metric keys every
// run has (one overlaid chart each). Pure functions, shared by the page and the tests.
import type { Run } from "./types";

export type Section = "params" | "metrics" | "tags";
export type Cell = string | number | null;

export interface CompareRow {
  section: Section;
  key: string;
  /** One value per run, in the runs' order; null where a run lacks the key. */
  values: Cell[];
  differs: boolean;
}

function same(a: Cell, b: Cell): boolean {
  if (a === null || b === null) return a === b;
  // A param "0.1" and a metric 0.1 compare as the numbers they show; otherwise as text.
  const x = Number(a);
  const y = Number(b);
  if (a !== "" && b !== "" && Number.isFinite(x) && Number.isFinite(y)) return x === y;
  return String(a) === String(b);
}

/** The rows of the table: every key any run has, by section then key. */
export function compareRows(runs: Run[], metrics: Record<string, Record<string, Cell>>): CompareRow[] {
  const rows: CompareRow[] = [];
  const sources: [Section, (r: Run) => Record<string, Cell>][] = [
    ["params", (r) => r.params],
    ["metrics", (r) => metrics[r.id] ?? {}],
    ["tags", (r) => r.tags],
  ];
  for (const [section, of] of sources) {
    const keys = new Set<string>();
    for (const r of runs) for (const k of Object.keys(of(r))) keys.add(k);
    for (const key of [...keys].sort()) {
      const values = runs.map((r) => {
        const v = of(r)[key];
        return v === undefined ? null : v;
      });
      rows.push({ section, key, values, differs: values.some((v) => !same(v, values[0]!)) });
    }
  }
  return rows;
}

/** The rows to show: all, or with "only differences" on, those whose values differ. */
export function visibleRows(rows: CompareRow[], onlyDifferences: boolean): CompareRow[] {
  return onlyDifferences ? rows.filter((r) => r.differs) : rows;
}

/** The metric keys every run has (each gets one chart with a line per run), sorted; `system/*`
 * keys last, as they are rarely the point of a comparison. */
export function commonKeys(keysPerRun: string[][]): string[] {
  if (keysPerRun.length === 0) return [];
  let common = new Set(keysPerRun[0]);
  for (const ks of keysPerRun.slice(1)) common = new Set(ks.filter((k) => common.has(k)));
  const sys = (k: string) => (k.startsWith("system/") ? 1 : 0);
  return [...common].sort((a, b) => sys(a) - sys(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** Runs' series as uPlot wants them: one x array (the union of steps, sorted) and one y array per
 * run, null where a run has no point at that step (the line bridges the gap). */
export function alignSeries(series: { steps: number[]; values: (number | string)[] }[]): (number | null)[][] {
  const xs = [...new Set(series.flatMap((s) => s.steps))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const y: (number | null)[] = new Array(xs.length).fill(null);
    s.steps.forEach((step, i) => {
      const v = Number(s.values[i]);
      y[at.get(step)!] = Number.isFinite(v) ? v : null;
    });
    return y;
  });
  return [xs, ...ys];
}

export type DiffLineKind = "file" | "hunk" | "add" | "del" | "ctx" | "note";
export interface DiffLine { kind: DiffLineKind; text: string; old: number | null; new: number | null }

const HUNK = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/;

/** A unified diff's lines with their kind and line numbers (in the old and the new file), read from
 * each hunk's `@@ -a,b +c,d @@` header: a removed line has only an old number, an added one only a
 * new one, a context line both. File headers and "\ No newline" / "Binary files" notes have none. */
export function numberedDiff(text: string): DiffLine[] {
  const out: DiffLine[] = [];
  let oldNo = 0;
  let newNo = 0;
  let inHunk = false;
  const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  if (text === "") return out;
  for (const line of lines) {
    const h = HUNK.exec(line);
    if (h) {
      oldNo = Number(h[1]);
      newNo = Number(h[2]);
      inHunk = true;
      out.push({ kind: "hunk", text: line, old: null, new: null });
    } else if (!inHunk || line.startsWith("--- ") || line.startsWith("+++ ")) {
      // a file header ends the previous file's hunks
      if (line.startsWith("--- ") || line.startsWith("+++ ")) inHunk = false;
      out.push({ kind: line.startsWith("--- ") || line.startsWith("+++ ") ? "file" : "note", text: line, old: null, new: null });
    } else if (line.startsWith("+")) {
      out.push({ kind: "add", text: line, old: null, new: newNo++ });
    } else if (line.startsWith("-")) {
      out.push({ kind: "del", text: line, old: oldNo++, new: null });
    } else if (line.startsWith("\\")) {
      out.push({ kind: "note", text: line, old: null, new: null });
    } else if (line.startsWith("Binary files ")) {
      inHunk = false;
      out.push({ kind: "note", text: line, old: null, new: null });
    } else {
      out.push({ kind: "ctx", text: line, old: oldNo++, new: newNo++ });
    }
  }
  return out;
}

// Runs table columns and sorting. The table holds every loaded run (up to 10,000), so a click on a
// header sorts in the page, without asking the server again.
import type { Run, RunMetrics } from "./types";

export type ColumnKind = "attr" | "params" | "metrics" | "tags";

export interface Column {
  kind: ColumnKind;
  key: string;
}

export type Direction = "asc" | "desc";

export interface Sort {
  column: Column;
  dir: Direction;
}

export const DEFAULT_COLUMNS: Column[] = [
  { kind: "attr", key: "name" },
  { kind: "attr", key: "status" },
  { kind: "attr", key: "created_at" },
  { kind: "attr", key: "created_by" },
];

export function columnId(c: Column): string {
  return c.kind === "attr" ? c.key : `${c.kind}.${c.key}`;
}

export function columnLabel(c: Column): string {
  return c.kind === "attr" ? c.key.replace(/_/g, " ") : `${c.kind}.${c.key}`;
}

export type Cell = string | number | null;

export function cellValue(run: Run, c: Column, metrics: RunMetrics): Cell {
  switch (c.kind) {
    case "attr": {
      const v = (run as unknown as Record<string, unknown>)[c.key === "run_id" ? "id" : c.key];
      return v === undefined || v === null ? null : typeof v === "number" ? v : String(v);
    }
    case "params":
      return run.params[c.key] ?? null;
    case "tags":
      return run.tags[c.key] ?? null;
    case "metrics": {
      const v = metrics[run.id]?.[c.key];
      return v === undefined ? null : v;
    }
  }
}

function asNumber(v: Cell): number | null {
  if (typeof v === "number") return Number.isNaN(v) ? null : v;
  if (v === null || v.trim() === "") return null;
  const n = Number(v);
  return Number.isNaN(n) ? null : n;
}

/** Compare two cells: numerically when both are numbers (params are strings like "0.01"), else
 * as text; an empty cell sorts last in either direction (as the registry's search does). */
export function compareCells(a: Cell, b: Cell, dir: Direction): number {
  const aMissing = a === null || a === "NaN";
  const bMissing = b === null || b === "NaN";
  if (aMissing || bMissing) return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
  const na = asNumber(a);
  const nb = asNumber(b);
  const sign = dir === "asc" ? 1 : -1;
  if (na !== null && nb !== null) return na === nb ? 0 : (na < nb ? -1 : 1) * sign;
  const sa = String(a);
  const sb = String(b);
  return sa === sb ? 0 : (sa < sb ? -1 : 1) * sign;
}

/** A sorted copy (stable: equal cells keep the loaded order). */
export function sortRuns(runs: Run[], sort: Sort | null, metrics: RunMetrics): Run[] {
  if (!sort) return runs;
  const keyed = runs.map((r, i) => ({ r, i, v: cellValue(r, sort.column, metrics) }));
  keyed.sort((x, y) => compareCells(x.v, y.v, sort.dir) || x.i - y.i);
  return keyed.map((k) => k.r);
}

/** A header click: a new column sorts ascending, the same column flips. */
export function nextSort(current: Sort | null, column: Column): Sort {
  if (current && columnId(current.column) === columnId(column)) {
    return { column, dir: current.dir === "asc" ? "desc" : "asc" };
  }
  return { column, dir: "asc" };
}

/** Add or remove a column (the column picker). */
export function toggleColumn(columns: Column[], c: Column): Column[] {
  const id = columnId(c);
  return columns.some((x) => columnId(x) === id) ? columns.filter((x) => columnId(x) !== id) : [...columns, c];
}

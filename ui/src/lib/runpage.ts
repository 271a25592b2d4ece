// The run page's logic, kept out of the components so it is tested on its own: which tags and
// metric keys go where, the packages filter, the job log's tail, and the lineage graph's layout
// (columns left to right: what went in, the run, what came out).
import type { Route } from "./router";

/** MLflow keeps a run's notes in this tag; keeping them there means MLflow clients see them. */
export const NOTE_TAG = "mlflow.note.content";
/** The registry's tag values are at most this long (services/registry/api.py `TagValue`). */
export const NOTE_MAX = 8000;
/** The SDK's system-metrics sampler logs its keys under this prefix (cairn.sdk.system_metrics). */
export const SYSTEM_PREFIX = "system/";
/** The tag the scheduler puts on a job's run (docs/reproducibility.md). */
export const JOB_TAG = "cairn.job_id";

/** Every tag but the notes, which have their own section. */
export function visibleTags(tags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).filter(([k]) => k !== NOTE_TAG));
}

/** Training metrics and system metrics (CPU, memory, GPU samples), each sorted. */
export function splitMetricKeys(keys: string[]): { training: string[]; system: string[] } {
  const sorted = [...keys].sort();
  return { training: sorted.filter((k) => !k.startsWith(SYSTEM_PREFIX)),
    system: sorted.filter((k) => k.startsWith(SYSTEM_PREFIX)) };
}

/** A `name==version` package line as [name, version] (a line without `==` is all name). */
export function splitPackage(line: string): [string, string] {
  const at = line.indexOf("==");
  return at < 0 ? [line, ""] : [line.slice(0, at), line.slice(at + 2)];
}

/** The packages whose line contains every word of `query` (case-insensitive), in their order. */
export function filterPackages(packages: string[], query: string): string[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return packages;
  return packages.filter((p) => { const l = p.toLowerCase(); return words.every((w) => l.includes(w)); });
}

/** The last `n` lines of a log (a trailing newline does not count as an empty line). */
export function tailLines(text: string, n: number): { lines: string[]; cut: number } {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const cut = Math.max(0, lines.length - n);
  return { lines: lines.slice(cut), cut };
}

/** Bytes as a short human number (the record's memory). */
export function humanBytes(n: number | null | undefined): string | null {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return null;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

// --- lineage ---------------------------------------------------------------------------------

export interface LineageNode { id: string; ref: string; kind: string; project?: string | null; title?: string | null }
export interface LineageEdge { src: string; dst: string; type: string; label?: string | null }
export interface LineageGraph { node?: LineageNode; nodes: LineageNode[]; edges: LineageEdge[] }

export interface Placed { node: LineageNode; col: number; row: number }
export interface Layout { placed: Placed[]; edges: LineageEdge[]; cols: number; rows: number; center: number }

/**
 * Columns for a graph around `centerRef` (e.g. `run:<id>`): a node's column is its signed
 * distance from the centre, negative upstream (edges point downstream), positive downstream, the
 * nearest way found first; nodes reached neither way (side links among the walked nodes) go with
 * the upstream side of their nearest neighbour. Within a column, nodes are sorted by kind, then ref.
 */
export function layoutLineage(graph: LineageGraph, centerRef: string): Layout | null {
  const center = graph.nodes.find((n) => n.ref === centerRef);
  if (!center) return null;
  const offset = new Map<string, number>([[center.id, 0]]);
  const edges = graph.edges.filter((e) => e.src !== e.dst && e.type !== "version_of");
  for (const dir of [1, -1]) {
    let frontier = [center.id];
    for (let d = dir; frontier.length > 0; d += dir) {
      const next: string[] = [];
      for (const id of frontier) {
        for (const e of edges) {
          const other = dir > 0 ? (e.src === id ? e.dst : null) : (e.dst === id ? e.src : null);
          if (other !== null && !offset.has(other)) { offset.set(other, d); next.push(other); }
        }
      }
      frontier = next;
    }
  }
  for (const n of graph.nodes) {  // side nodes: one column left of a neighbour that has one
    if (offset.has(n.id)) continue;
    const near = edges.find((e) => (e.src === n.id && offset.has(e.dst)) || (e.dst === n.id && offset.has(e.src)));
    if (near) offset.set(n.id, near.src === n.id ? offset.get(near.dst)! - 1 : offset.get(near.src)! + 1);
  }
  const known = graph.nodes.filter((n) => offset.has(n.id));
  const lo = Math.min(...known.map((n) => offset.get(n.id)!));
  const hi = Math.max(...known.map((n) => offset.get(n.id)!));
  const byCol = new Map<number, LineageNode[]>();
  for (const n of known) {
    const c = offset.get(n.id)! - lo;
    byCol.set(c, [...(byCol.get(c) ?? []), n]);
  }
  const placed: Placed[] = [];
  let rows = 0;
  for (const [col, nodes] of byCol) {
    nodes.sort((a, b) => a.kind.localeCompare(b.kind) || a.ref.localeCompare(b.ref));
    nodes.forEach((node, row) => placed.push({ node, col, row }));
    rows = Math.max(rows, nodes.length);
  }
  const ids = new Set(known.map((n) => n.id));
  return { placed, edges: edges.filter((e) => ids.has(e.src) && ids.has(e.dst)), cols: hi - lo + 1, rows,
    center: -lo };
}

/** The app's page for a lineage node, where one exists (a dataset, a model, a run). */
export function nodeRoute(node: LineageNode, project: string): Route | null {
  const p = node.project || project;
  const colon = node.ref.indexOf(":");
  if (colon < 0) return null;
  const kind = node.ref.slice(0, colon);
  const rest = node.ref.slice(colon + 1);
  const at = rest.lastIndexOf("@");
  const name = at < 0 ? rest : rest.slice(0, at);
  if (!name) return null;
  if (kind === "run") return { page: "run", project: p, runId: name };
  if (kind === "dataset") return { page: "dataset", project: p, name };
  if (kind === "model") return { page: "model", project: p, model: name };
  return null;
}

/** Files and lines an uncommitted `git diff` touches: the record's dirty-diff summary. */
export function diffSummary(diff: string | null | undefined): { files: string[]; added: number; removed: number } {
  const files: string[] = [];
  let added = 0;
  let removed = 0;
  for (const line of (diff ?? "").split("\n")) {
    const m = /^diff --git a\/(.+?) b\//.exec(line);
    if (m) files.push(m[1]!);
    else if (line.startsWith("+") && !line.startsWith("+++")) added++;
    else if (line.startsWith("-") && !line.startsWith("---")) removed++;
  }
  return { files, added, removed };
}

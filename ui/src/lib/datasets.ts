// Datasets: the shapes the artifacts service answers (docs/artifacts.md) and the pure helpers the
// dataset pages stand on (file filter and paging, the diff's summary, byte sizes), tested alone.

export interface DatasetRow { name: string; latest_version: number; created_at: string; updated_at: string }

export interface DatasetVersion {
  version: number;
  manifest_digest: string;
  files: number;
  total_size: number;
  description: string;
  created_at: string;
  created_by: string;
}

export interface ManifestEntry { path: string; kind: string; size: number; digest: string; target?: string | null }

export interface DiffFile { path: string; size: number; kind: string }
export interface ChangedFile { path: string; size_before: number; size_after: number; size_change: number; table?: unknown }

export interface DatasetDiff {
  dataset: string;
  from: number;
  to: number;
  added: DiffFile[];
  removed: DiffFile[];
  changed: ChangedFile[];
  unchanged: number;
  size_before: number;
  size_after: number;
}

/** A byte count for people: 1023 B, 1.5 KiB, 12.0 MiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "";
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${sign}${v} B` : `${sign}${v.toFixed(1)} ${units[u]}`;
}

/** A signed size change (+1.0 KiB, -12 B, 0 B). */
export function formatChange(n: number): string {
  return n > 0 ? `+${formatBytes(n)}` : formatBytes(n);
}

/** The entries whose path holds every word of `query` (case-insensitive), in manifest order. */
export function filterFiles(entries: ManifestEntry[], query: string): ManifestEntry[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return entries;
  return entries.filter((e) => {
    const p = e.path.toLowerCase();
    return words.every((w) => p.includes(w));
  });
}

export interface Paged<T> { items: T[]; page: number; pages: number; first: number; last: number }

/** One page of `items` (pages counted from 0; a page past the end is the last one). */
export function pageOf<T>(items: T[], page: number, size: number): Paged<T> {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const p = Math.max(0, Math.min(pages - 1, Math.floor(page)));
  const first = p * size;
  const slice = items.slice(first, first + size);
  return { items: slice, page: p, pages, first: slice.length ? first + 1 : 0, last: first + slice.length };
}

/** One line saying what a diff found, e.g. "1 added (10 B), 0 removed, 1 changed (+4 B); 3 unchanged; 1.0 KiB → 1.1 KiB". */
export function diffSummary(d: DatasetDiff): string {
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const added = sum(d.added.map((f) => f.size));
  const removed = sum(d.removed.map((f) => f.size));
  const changed = sum(d.changed.map((f) => f.size_change));
  const parts = [
    `${d.added.length} added${d.added.length ? ` (${formatBytes(added)})` : ""}`,
    `${d.removed.length} removed${d.removed.length ? ` (${formatBytes(removed)})` : ""}`,
    `${d.changed.length} changed${d.changed.length ? ` (${formatChange(changed)})` : ""}`,
  ];
  return `${parts.join(", ")}; ${d.unchanged} unchanged; ${formatBytes(d.size_before)} → ${formatBytes(d.size_after)}`;
}

/** The run ids among a lineage answer's nodes (`run:<id>` references). */
export function runsOf(nodes: { ref: string; kind: string }[]): string[] {
  const ids = nodes.filter((n) => n.kind === "run" && n.ref.startsWith("run:")).map((n) => n.ref.slice(4));
  return [...new Set(ids)];
}

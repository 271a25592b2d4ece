// A run's media (docs/media.md): the index entries the artifacts service lists, which entry a step
// slider shows, and how each kind is displayed. HTML is only ever shown in a sandboxed frame.
import { seg } from "./api";

export type MediaKind = "image" | "figure" | "table" | "text" | "html";

export interface MediaKey { key: string; kind: MediaKind; count: number; min_step: number; max_step: number }

export interface MediaEntry {
  entry: string; key: string; step: number; kind: MediaKind; digest: string;
  thumbnail_digest: string | null; thumbnail_type: string | null; media_type: string; size: number;
  width: number | null; height: number | null; source: string; name: string | null; created_at: string | null;
}

/** How an entry is shown: an image (thumbnail, full size on click), a table preview, text, a
 * sandboxed frame (html), or a download only (an interactive figure's HTML: its scripts would not
 * run in the sandbox). */
export type Display = "image" | "table" | "text" | "frame" | "download";

export function displayOf(e: Pick<MediaEntry, "kind" | "media_type" | "thumbnail_digest">): Display {
  if (e.media_type.startsWith("image/")) return "image";
  if (e.kind === "table") return "table";
  if (e.kind === "text") return "text";
  if (e.kind === "html") return "frame";
  return e.thumbnail_digest ? "image" : "download";
}

/** The table preview route's format for a table entry; null: not one the route reads (MLflow's
 * JSON tables are read here instead). */
export function tableFormatOf(mediaType: string): string | null {
  if (mediaType === "application/vnd.apache.parquet") return "parquet";
  if (mediaType === "text/csv") return "csv";
  return null;
}

/** Steps in order with the entry shown for each (the one logged last at that step). */
export function byStep(entries: readonly MediaEntry[]): MediaEntry[] {
  const last = new Map<number, MediaEntry>();
  for (const e of entries) {
    const seen = last.get(e.step);
    if (!seen || (e.created_at ?? "") >= (seen.created_at ?? "")) last.set(e.step, e);
  }
  return [...last.values()].sort((a, b) => a.step - b.step);
}

/** An MLflow table (pandas' "split" JSON: {columns, data}) as columns and rows; null if not one. */
export function splitTable(text: string): { columns: string[]; rows: unknown[][] } | null {
  try {
    const t = JSON.parse(text) as { columns?: unknown; data?: unknown };
    if (!Array.isArray(t.columns) || !Array.isArray(t.data) || !t.data.every(Array.isArray)) return null;
    return { columns: t.columns.map(String), rows: t.data as unknown[][] };
  } catch {
    return null;
  }
}

export const mediaKeysUrl = (project: string, runId: string) =>
  `/api/v1/artifacts/projects/${seg(project)}/runs/${seg(runId)}/media/keys`;
export const mediaUrl = (project: string, runId: string, key: string, limit = 1000) =>
  `/api/v1/artifacts/projects/${seg(project)}/runs/${seg(runId)}/media?${new URLSearchParams({ key, limit: String(limit) })}`;

// Live runs table: events from the SSE stream (GET /api/v1/events/stream) change the loaded rows
// in place. A pure reducer, so the page and the tests share it.
import type { Run, StreamEvent } from "./types";

export interface LiveResult {
  runs: Run[];
  /** A run was added (with a filter set, the page asks the server again rather than guess). */
  added: boolean;
}

function runFromCreated(e: StreamEvent): Run {
  const d = e.data as Record<string, unknown>;
  const status = String(d.status ?? "running");
  return {
    id: e.aggregate_id,
    project: e.project,
    experiment_id: String(d.experiment_id ?? ""),
    name: String(d.name ?? ""),
    status,
    description: String(d.description ?? ""),
    archived: false,
    created_at: e.time,
    updated_at: e.time,
    started_at: status === "running" ? e.time : null,
    ended_at: null,
    created_by: e.actor,
    params: { ...(d.params as Record<string, string> | undefined) },
    tags: { ...(d.tags as Record<string, string> | undefined) },
  };
}

function update(runs: Run[], id: string, change: (r: Run) => Run): Run[] {
  const i = runs.findIndex((r) => r.id === id);
  if (i < 0) return runs;
  const next = runs.slice();
  next[i] = change(runs[i]!);
  return next;
}

/** The rows after one event of `project` (events of other projects or aggregates change nothing). */
export function applyEvent(runs: Run[], e: StreamEvent, project: string): LiveResult {
  if (e.project !== project || e.aggregate !== "run") return { runs, added: false };
  const d = e.data as Record<string, unknown>;
  const id = e.aggregate_id;
  switch (e.type) {
    case "run.created":
      if (runs.some((r) => r.id === id)) return { runs, added: false };
      return { runs: [runFromCreated(e), ...runs], added: true };
    case "run.started":
      return { runs: update(runs, id, (r) => ({ ...r, status: "running", started_at: e.time, updated_at: e.time })), added: false };
    case "run.finished":
      return {
        runs: update(runs, id, (r) => ({ ...r, status: String(d.status), status_message: (d.message as string) ?? null,
          ended_at: e.time, updated_at: e.time })),
        added: false,
      };
    case "run.params_logged":
      return { runs: update(runs, id, (r) => ({ ...r, params: { ...r.params, ...(d.params as Record<string, string>) } })), added: false };
    case "run.tag_set":
      return { runs: update(runs, id, (r) => ({ ...r, tags: { ...r.tags, [String(d.key)]: String(d.value) } })), added: false };
    case "run.tag_deleted":
      return {
        runs: update(runs, id, (r) => {
          const tags = { ...r.tags };
          delete tags[String(d.key)];
          return { ...r, tags };
        }),
        added: false,
      };
    case "run.updated":
      return {
        runs: update(runs, id, (r) => ({ ...r, ...(typeof d.name === "string" ? { name: d.name } : {}),
          ...(typeof d.description === "string" ? { description: d.description } : {}), updated_at: e.time })),
        added: false,
      };
    case "run.archived":
      return { runs: runs.filter((r) => r.id !== id), added: false };
    default:
      return { runs, added: false };
  }
}

/** Append a search page to the rows, skipping runs already there (a live `run.created` may have
 * added one while the pages were loading). */
export function appendPage(rows: Run[], page: Run[]): Run[] {
  const have = new Set(rows.map((r) => r.id));
  return [...rows, ...page.filter((r) => !have.has(r.id))];
}

/** Parse one SSE `data:` payload; null when it is not an event. */
export function parseEvent(data: string): StreamEvent | null {
  try {
    const e = JSON.parse(data) as StreamEvent;
    return e && typeof e.type === "string" && typeof e.aggregate_id === "string" ? e : null;
  } catch {
    return null;
  }
}

export function streamUrl(project: string): string {
  return `/api/v1/events/stream?${new URLSearchParams({ project, types: "run.*" })}`;
}

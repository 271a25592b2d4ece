// The live jobs list: `job.*` events from the SSE stream change the loaded jobs in place, the way
// the scheduler's projection does (services/scheduler/domain.py evolve_job), so the list agrees
// with a reload. A pure reducer, shared by the page and the tests.
import type { StreamEvent } from "./types";

export interface Job {
  id: string;
  project: string;
  run_id: string | null;
  name: string;
  queue: string;
  status: string;
  attempt: number;
  submitted_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  exit_code: number | null;
  reason: string | null;
  message: string | null;
  cancel_requested: boolean;
  [more: string]: unknown;
}

export const FINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
export const JOB_EVENTS = ["job.submitted", "job.assigned", "job.started", "job.succeeded", "job.failed",
  "job.retried", "job.cancel_requested", "job.cancelled", "job.lost"];

function fromSubmitted(e: StreamEvent): Job {
  const d = e.data as Record<string, unknown>;
  const spec = (d.spec ?? {}) as Record<string, unknown>;
  return {
    id: e.aggregate_id, project: e.project, run_id: (d.run_id as string) ?? null,
    name: String(spec.name ?? ""), queue: String(spec.queue ?? "default"), status: "queued", attempt: 1,
    submitted_at: e.time, started_at: null, ended_at: null, exit_code: null, reason: null, message: null,
    cancel_requested: false,
  };
}

/** The job after one of its events. */
export function evolveJob(j: Job, e: StreamEvent): Job {
  const d = e.data as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === "number" ? v : null);
  switch (e.type) {
    case "job.assigned": return { ...j, status: "assigned" };
    case "job.started": return { ...j, status: "running", started_at: j.started_at ?? e.time };
    case "job.succeeded": return { ...j, status: "succeeded", ended_at: e.time, exit_code: num(d.exit_code) };
    case "job.failed":
      return { ...j, status: "failed", ended_at: e.time, exit_code: num(d.exit_code),
        reason: (d.reason as string) ?? null, message: (d.message as string) ?? null };
    case "job.cancelled": return { ...j, status: "cancelled", ended_at: e.time, message: (d.message as string) ?? null };
    case "job.cancel_requested": return { ...j, cancel_requested: true };
    case "job.lost": return { ...j, status: "lost" };
    case "job.retried": return { ...j, status: "queued", attempt: num(d.attempt) ?? j.attempt + 1 };
    default: return j;
  }
}

/** The list after one event (newest first; events of other projects or aggregates change nothing;
 * a repeated `job.submitted`, as after a reconnect, adds nothing). */
export function applyJobEvent(jobs: Job[], e: StreamEvent, project: string): Job[] {
  if (e.project !== project || e.aggregate !== "job") return jobs;
  if (e.type === "job.submitted") {
    return jobs.some((j) => j.id === e.aggregate_id) ? jobs : [fromSubmitted(e), ...jobs];
  }
  const i = jobs.findIndex((j) => j.id === e.aggregate_id);
  if (i < 0) return jobs;
  const next = evolveJob(jobs[i]!, e);
  if (next === jobs[i]) return jobs;
  const out = jobs.slice();
  out[i] = next;
  return out;
}

export function jobStreamUrl(project: string): string {
  return `/api/v1/events/stream?${new URLSearchParams({ project, types: "job.*" })}`;
}

// Pipeline runs in the app: the DAG's levels (as the CLI's text drawing lays them out,
// cairn.pipelines.render), who may decide an approval, and which events make a page read a run
// again. The page never re-implements the pipelines domain: an event only says "read the run's
// view again"; the service's view is the truth.
import { atLeast } from "./roles";
import type { Role, StreamEvent } from "./types";

export interface PipelineRunSummary {
  id: string;
  pipeline: string;
  status: string;
  trigger_kind: string;
  commit: string | null;
  started_at: string | null;
  finished_at: string | null;
  seq: number;
}

export interface PipelineStep {
  id: string;
  kind: string;
  state: string;
  attempt: number;
  job_id: string | null;
  run_id: string | null;
  outputs: Record<string, unknown> | null;
  metrics: Record<string, unknown> | null;
  reason: string | null;
  message: string | null;
  comparisons: Record<string, unknown>[] | null;
  started_at: string | null;
  finished_at: string | null;
  required_role: string | null;
  /** Who granted or rejected an approval: `{actor, role}` (the actor's role then). */
  decided_by: { actor?: string; role?: string } | null;
  source_run: string | null;
  [more: string]: unknown;
}

export interface PipelineRunView {
  id: string;
  project: string;
  pipeline: string;
  status: string;
  trigger: Record<string, unknown>;
  params: Record<string, unknown>;
  code: Record<string, unknown> | null;
  cancel_requested: boolean;
  started_at: string | null;
  finished_at: string | null;
  outcome: string | null;
  steps: PipelineStep[];
  [more: string]: unknown;
}

/** The event types the pipelines pages follow (the stream's `types=` and the listeners). */
export const PIPELINE_EVENTS = [
  "pipeline_run.started", "pipeline_run.cancel_requested", "pipeline_run.finished",
  "step.started", "step.succeeded", "step.failed", "step.skipped", "step.cached",
  "gate.passed", "gate.failed", "approval.requested", "approval.granted", "approval.rejected",
];

export function pipelineStreamUrl(project: string): string {
  return `/api/v1/events/stream?${new URLSearchParams({ project, types: "pipeline_run.*,step.*,gate.*,approval.*" })}`;
}

/** Whether an event should make a page read again: the list (runId null) for any pipeline run
 * event of its project that changes a run's row (start, cancel, finish); a run page for any
 * event of that run. Events of other projects, aggregates or runs change nothing. */
export function shouldRefresh(e: StreamEvent, project: string, runId: string | null): boolean {
  if (e.project !== project || e.aggregate !== "pipeline_run") return false;
  if (runId === null) return e.type.startsWith("pipeline_run.");
  return e.aggregate_id === runId && PIPELINE_EVENTS.includes(e.type);
}

/** Each step's `needs`, read from the run's `pipeline_run.started` event (its canonical
 * `definition`), since the run view lists the steps but not their edges. */
export function needsFromEvents(events: { type: string; data: Record<string, unknown> }[]): Record<string, string[]> {
  const started = events.find((e) => e.type === "pipeline_run.started");
  const def = started?.data.definition as { steps?: { id: string; needs?: string[] }[] } | undefined;
  const out: Record<string, string[]> = {};
  for (const s of def?.steps ?? []) out[s.id] = [...(s.needs ?? [])];
  return out;
}

/** The steps by level: level k holds the steps whose longest chain of needs has k edges, so a
 * level's steps can run at once (the CLI's `render_text` layout). Order within a level is the
 * given order. A need that names no step is ignored; a cycle (which validation refuses) does not
 * loop: a step on one is put one level past what was known when it was reached. */
export function levels<T extends { id: string }>(steps: T[], needs: Record<string, string[]>): T[][] {
  const known = new Set(steps.map((s) => s.id));
  const level = new Map<string, number>();
  const visiting = new Set<string>();
  const depth = (id: string): number => {
    const have = level.get(id);
    if (have !== undefined) return have;
    if (visiting.has(id)) return 0;
    visiting.add(id);
    let d = 0;
    for (const n of needs[id] ?? []) if (known.has(n)) d = Math.max(d, depth(n) + 1);
    visiting.delete(id);
    level.set(id, d);
    return d;
  };
  const out: T[][] = [];
  for (const s of steps) {
    const d = depth(s.id);
    while (out.length <= d) out.push([]);
    out[d]!.push(s);
  }
  return out.filter((l) => l.length > 0);
}

/** Whether the caller may approve or reject a step waiting for approval: their role in the
 * project is at least the step's `required_role` (viewer < editor < admin), the service's rule. */
export function canDecide(role: Role | null | undefined, step: Pick<PipelineStep, "state" | "required_role">): boolean {
  if (step.state !== "waiting_approval") return false;
  return atLeast(role, (step.required_role ?? "admin") as Role);
}

/** The word and symbol for a step state (the CLI's symbols), so state is never colour alone. */
export const STATE_SYMBOL: Record<string, string> = {
  pending: "○", running: "●", succeeded: "✓", failed: "✗", skipped: "⊘", cached: "↺", waiting_approval: "⏸",
};

// Sweeps as the scheduler answers them (docs/sweeps.md "API"), and the pure logic of the sweep
// pages: trial counts, sorting trials by the objective, and which stream events mean "read again".
// The page never folds sweep events itself: the scheduler's projection is the one truth.
import type { StreamEvent } from "./types";

export type Goal = "minimize" | "maximize";
export type TrialState = "running" | "complete" | "pruned" | "failed" | "cancelled";

export interface Trial {
  number: number;
  state: TrialState | string;
  params: Record<string, string | number | boolean>;
  value: number | null;
  step: number | null;
  job_id: string | null;
  run_id: string | null;
  error: string | null;
}

export interface SweepSummary {
  id: string;
  project: string;
  name: string;
  method: string;
  metric: string;
  goal: Goal;
  status: string;
  reason: string | null;
  created_at: string;
  created_by: string;
  trial_counts: Record<string, number>;
  best_trial: Trial | null;
}

export interface Sweep extends SweepSummary {
  spec: { budget?: { max_trials?: number | null; max_duration_s?: number | null }; parameters?: Record<string, unknown> };
  trials: Trial[];
}

export interface SweepTable {
  metric: string;
  goal: Goal;
  dimensions: { name: string; type: string; min?: number; max?: number; log?: boolean; values?: (string | number | boolean)[] }[];
  rows: { trial: number; state: string; params: Record<string, string | number | boolean>; step: number | null;
    run_id: string | null; job_id: string | null; [metric: string]: unknown }[];
}

export const TRIAL_DONE = ["complete", "pruned", "failed", "cancelled"] as const;

/** Trials that ended (whatever the outcome) and trials started in all. */
export function trialProgress(counts: Record<string, number>): { done: number; started: number; running: number } {
  const done = TRIAL_DONE.reduce((n, s) => n + (counts[s] ?? 0), 0);
  const running = counts.running ?? 0;
  return { done, started: done + running, running };
}

/** "12 of 40" (the budget's max_trials when the spec has one), else "12 of 15 started". */
export function progressText(counts: Record<string, number>, maxTrials?: number | null): string {
  const p = trialProgress(counts);
  return maxTrials ? `${p.done} of ${maxTrials}` : `${p.done} of ${p.started} started`;
}

export type SortKey = "number" | "value";

/** Trials sorted by number, or by the objective: best first for the sweep's goal (a second click
 * flips), trials without a value last either way, ties by number. */
export function sortTrials(trials: Trial[], key: SortKey, goal: Goal, descending = false): Trial[] {
  const out = trials.slice();
  if (key === "number") return out.sort((a, b) => (descending ? b.number - a.number : a.number - b.number));
  const best = goal === "maximize" ? -1 : 1;
  const sign = descending ? -best : best;
  return out.sort((a, b) => {
    const av = a.value;
    const bv = b.value;
    if (av === null || !Number.isFinite(av)) return bv === null || !Number.isFinite(bv) ? a.number - b.number : 1;
    if (bv === null || !Number.isFinite(bv)) return -1;
    return av === bv ? a.number - b.number : (av - bv) * sign;
  });
}

/** The stream's sweep events (the SSE event names the page listens for). */
export const SWEEP_EVENTS = ["sweep.created", "sweep.trial_started", "sweep.trial_reported", "sweep.trial_pruned",
  "sweep.trial_finished", "sweep.completed", "sweep.stopped"] as const;

export function sweepStreamUrl(project: string): string {
  return `/api/v1/events/stream?${new URLSearchParams({ project, types: "sweep.*" })}`;
}

/** Whether an event changes what a page shows: any sweep event of the project for the list (a
 * `sweep.trial_reported` only feeds the pruner), this sweep's for the sweep page. */
export function shouldReload(e: StreamEvent, project: string, sweepId?: string): boolean {
  if (e.project !== project || e.aggregate !== "sweep" || e.type === "sweep.trial_reported") return false;
  return sweepId === undefined || e.aggregate_id === sweepId;
}

// Shapes the API answers (see docs/registry.md, docs/metrics.md, docs/ui.md): only the fields the
// app reads are typed; the rest pass through untouched.

export type Role = "viewer" | "editor" | "admin";

export interface Session {
  user: string;
  kind: string;
  site_admin: boolean;
  projects: Record<string, Role>;
  csrf: string;
}

export interface Run {
  id: string;
  project: string;
  experiment_id: string;
  name: string;
  status: string;
  status_message?: string | null;
  description: string;
  archived: number | boolean;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  ended_at: string | null;
  created_by: string;
  params: Record<string, string>;
  tags: Record<string, string>;
}

/** A metric's last value per run: `metrics.<key>` columns and sorting. */
export type RunMetrics = Record<string, Record<string, number | string | null>>;

export interface MetricSummary {
  key: string;
  count: number;
  last: number | string | null;
  last_step: number;
}

export interface History {
  run_id: string;
  key: string;
  total: number;
  method: string;
  steps: number[];
  values: (number | string)[];
  timestamps: number[];
}

/** An event as the SSE stream shows it (`cairn.kernel.envelope.Event.to_dict`). */
export interface StreamEvent {
  type: string;
  project: string;
  aggregate: string;
  aggregate_id: string;
  data: Record<string, unknown>;
  actor: string;
  time: string;
  sequence: number;
}

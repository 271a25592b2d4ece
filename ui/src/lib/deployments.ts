// Pure logic of the deployments pages: grouping by environment, replica and traffic wording, and
// the scale form's check. The page renders what these return (ui/test/deployments.test.ts).

export interface Environment { name: string; protected: boolean }

export interface TrafficSplit { canary?: { version: number; percent: number } | null; shadow?: { version: number } | null }

export interface DeploymentRow {
  name: string;
  environment: string;
  model: string;
  follows: string | null;
  version: number;
  run_id: string | null;
  replicas: { healthy: number; total: number };
  traffic: TrafficSplit | null;
  requests_per_s: number | null;
  error_rate: number | null;
  seq: number;
}

export interface Replica { replica_id: string; url: string; version: number; state: string; reason?: string; managed?: boolean }

export interface EnvironmentGroup { name: string; protected: boolean; deployments: DeploymentRow[] }

/** Every environment the service knows (with its protected flag), each with its deployments by
 * name; an environment that only a deployment names shows too (unprotected unless said). */
export function byEnvironment(rows: readonly DeploymentRow[], environments: readonly Environment[]): EnvironmentGroup[] {
  const groups = new Map<string, EnvironmentGroup>();
  for (const e of environments) groups.set(e.name, { name: e.name, protected: e.protected, deployments: [] });
  for (const r of rows) {
    let g = groups.get(r.environment);
    if (!g) groups.set(r.environment, g = { name: r.environment, protected: false, deployments: [] });
    g.deployments.push(r);
  }
  for (const g of groups.values()) g.deployments.sort((a, b) => a.name.localeCompare(b.name));
  return [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** "v3 (follows production)" or "v3 (pinned)". */
export function describeVersion(r: { version: number; follows: string | null }): string {
  return `v${r.version} ${r.follows ? `(follows ${r.follows})` : "(pinned)"}`;
}

/** "canary v4 at 10%, shadow v5", or "none". */
export function describeTraffic(t: TrafficSplit | null | undefined): string {
  const parts: string[] = [];
  if (t?.canary) parts.push(`canary v${t.canary.version} at ${t.canary.percent}%`);
  if (t?.shadow) parts.push(`shadow v${t.shadow.version}`);
  return parts.join(", ") || "none";
}

/** Ready of desired: "1 of 2 ready". */
export function describeReplicas(r: { healthy: number; total: number }): string {
  return `${r.healthy} of ${r.total} ready`;
}

/** The state word of a deployment row: every desired replica up, some, none, or scaled to zero. */
export function deploymentState(r: { healthy: number; total: number }): "ready" | "partial" | "down" | "stopped" {
  if (r.total === 0) return "stopped";
  if (r.healthy >= r.total) return "ready";
  return r.healthy > 0 ? "partial" : "down";
}

/** "host:port" of a replica's URL (its whole text when it is not a URL). */
export function hostPort(url: string): string {
  try {
    const u = new URL(url);
    return u.port ? `${u.hostname}:${u.port}` : u.host;
  } catch {
    return url;
  }
}

/** The URL clients call: a started replica's, else none yet. */
export function endpointOf(replicas: readonly Replica[]): string | null {
  return replicas.find((r) => r.state === "started")?.url ?? null;
}

export const MAX_REPLICAS = 256; // services/deployments/domain.py MAX_REPLICAS

/** What is wrong with a typed replica count (null: fine), as the API would say it. */
export function scaleProblem(text: string, max: number = MAX_REPLICAS): string | null {
  if (!/^\d+$/.test(text.trim())) return "Replicas must be a whole number, 0 or more.";
  const n = Number(text.trim());
  if (n > max) return `Replicas must be at most ${max}.`;
  return null;
}

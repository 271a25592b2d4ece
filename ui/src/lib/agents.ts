// The agents page's logic: an agent's state from what the scheduler says of it (its lease, its
// heartbeat's age, the job ranks it runs) and the queues summarised. Pure, so it is tested alone.

export interface AgentStatus {
  id: string;
  name: string;
  queue: string;
  host: string;
  cpus: number;
  memory_mib: number;
  gpus: number;
  gpu_types: string[];
  status: string; // active | lost (the scheduler's record)
  registered_at: string;
  lost_at: string | null;
  message: string | null;
  live: boolean;
  heartbeat_age_s: number | null;
  running_jobs: number;
}

export interface AgentsAnswer { agents: AgentStatus[]; queued: Record<string, number>; lease_s: number }

export type AgentState = "idle" | "busy" | "gone";

/** gone: lost, its lease ran out, or its last heartbeat is older than a lease (the scheduler will
 * call it lost at its next check); busy: it runs at least one job rank; idle otherwise. */
export function agentState(a: AgentStatus, leaseS: number): AgentState {
  if (a.status !== "active" || !a.live) return "gone";
  if (a.heartbeat_age_s !== null && a.heartbeat_age_s > leaseS) return "gone";
  return a.running_jobs > 0 ? "busy" : "idle";
}

/** "0.4 s ago", "3 min ago", "2 h ago"; "—" when the scheduler holds no lease. */
export function ageText(seconds: number | null): string {
  if (seconds === null) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

export function memoryText(mib: number): string {
  return mib >= 1024 ? `${Number((mib / 1024).toFixed(1))} GiB` : `${mib} MiB`;
}

export interface QueueRow { queue: string; agents: number; idle: number; busy: number; gone: number; queued: number }

/** One row per queue an agent serves or a job waits in, by name: agents by state and jobs queued. */
export function queueSummary(answer: AgentsAnswer): QueueRow[] {
  const rows = new Map<string, QueueRow>();
  const row = (q: string) => {
    let r = rows.get(q);
    if (!r) { r = { queue: q, agents: 0, idle: 0, busy: 0, gone: 0, queued: 0 }; rows.set(q, r); }
    return r;
  };
  for (const a of answer.agents) {
    const r = row(a.queue);
    const s = agentState(a, answer.lease_s);
    r[s] += 1;
    if (s !== "gone") r.agents += 1;
  }
  for (const [q, n] of Object.entries(answer.queued)) row(q).queued = n;
  return [...rows.values()].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0));
}

/** How often the page asks again: heartbeats renew an in-memory lease, not an event of record, so
 * the event stream cannot say how old they are. */
export const POLL_MS = 5000;

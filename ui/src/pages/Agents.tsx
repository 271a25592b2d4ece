// The site's agents (GET /api/v1/scheduler/agents/status): each agent's queue, state (idle, busy,
// gone), resources, GPU types, last heartbeat and running job ranks, and the queues summarised
// (agents by state, jobs waiting). Read again every POLL_MS: heartbeats renew an in-memory lease,
// not an event of record, so the event stream has nothing to say about them.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { agentState, ageText, memoryText, POLL_MS, queueSummary, type AgentsAnswer } from "../lib/agents";
import type { Session } from "../lib/types";
import "./agents.css";

export function Agents(_props: { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }) {
  const [answer, setAnswer] = useState<AgentsAnswer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [showGone, setShowGone] = useState(false);
  const [readAt, setReadAt] = useState<string | null>(null);

  useEffect(() => {
    let gone = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = () => {
      api.get<AgentsAnswer>("/api/v1/scheduler/agents/status").then((b) => {
        if (gone) return;
        setAnswer(b); setError(null); setReadAt(new Date().toLocaleTimeString("en-GB"));
      }, (e: Error) => { if (!gone) setError(e.message); })
        .finally(() => { if (!gone) timer = setTimeout(read, POLL_MS); }); // the next read waits for this one
    };
    read();
    return () => { gone = true; clearTimeout(timer); };
  }, []);

  const lease = answer?.lease_s ?? 0;
  const agents = (answer?.agents ?? []).filter((a) => showGone || agentState(a, lease) !== "gone");
  const hidden = (answer?.agents.length ?? 0) - agents.length;
  const queues = answer ? queueSummary(answer) : [];

  return (
    <section>
      <h1>Agents</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count">{answer ? `${agents.length} agents shown` : "Loading…"}
        {readAt && <span class="help"> · read at {readAt}, again every {POLL_MS / 1000} s</span>}</p>

      <h2>Queues</h2>
      {answer && queues.length === 0 && <p class="help">No agent has registered and no job waits.</p>}
      {queues.length > 0 && (
        <table class="list agent-queues">
          <thead><tr><th scope="col">Queue</th><th scope="col">Agents up</th><th scope="col">Idle</th><th scope="col">Busy</th>
            <th scope="col">Gone</th><th scope="col">Jobs queued</th></tr></thead>
          <tbody>{queues.map((q) => (
            <tr key={q.queue} class={q.queued > 0 && q.agents === 0 ? "agent-starved" : ""}>
              <th scope="row">{q.queue}</th><td>{q.agents}</td><td>{q.idle}</td><td>{q.busy}</td><td>{q.gone}</td>
              <td>{q.queued}{q.queued > 0 && q.agents === 0 && <span class="agent-warn"> (no agent serves it)</span>}</td>
            </tr>
          ))}</tbody>
        </table>
      )}

      <h2>Agents</h2>
      <div class="toolbar">
        <input type="checkbox" id="show-gone" checked={showGone} onChange={() => setShowGone((v) => !v)} />
        <label for="show-gone">Show gone agents</label>
        {!showGone && hidden > 0 && <span class="help">{hidden} hidden</span>}
      </div>
      {answer && agents.length === 0 && <p class="help">No agents: start one with <code>cairn agent --queue default</code>.</p>}
      {agents.length > 0 && (
        <div class="scroll-x">
          <table class="list agents">
            <thead><tr><th scope="col">Agent</th><th scope="col">Queue</th><th scope="col">State</th><th scope="col">CPUs</th>
              <th scope="col">GPUs</th><th scope="col">Memory</th><th scope="col">Labels</th><th scope="col">Last heartbeat</th>
              <th scope="col">Running jobs</th><th scope="col">Registered</th></tr></thead>
            <tbody>{agents.map((a) => {
              const state = agentState(a, lease);
              return (
                <tr key={a.id}>
                  <th scope="row">{a.name} <span class="help">{a.host}</span></th>
                  <td>{a.queue}</td>
                  <td class={`agent-${state}`}>{state}{state === "gone" && a.message ? ` (${a.message})` : ""}</td>
                  <td>{a.cpus}</td>
                  <td>{a.gpus}</td>
                  <td>{memoryText(a.memory_mib)}</td>
                  <td>{a.gpu_types.length ? a.gpu_types.map((g) => <span key={g} class="badge">{g}</span>) : "—"}</td>
                  <td>{ageText(a.heartbeat_age_s)}</td>
                  <td>{a.running_jobs}</td>
                  <td>{a.registered_at}</td>
                </tr>
              );
            })}</tbody>
          </table>
        </div>
      )}
      <p class="help">Labels: the GPU types an agent reported; the scheduler records no other labels.</p>
    </section>
  );
}

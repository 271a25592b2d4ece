// Pipeline runs, live, and one run: its DAG by level (boxes in a CSS grid, each state a colour
// AND a word), each step's details, gate comparisons, Approve/Reject for a caller whose role is at
// least the step's, and Cancel run for editors. An event of a run only makes the page read the
// run's view again (lib/pipelines.ts shouldRefresh): the service's view is the truth.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { reloadUntil } from "../lib/action";
import { LiveState, useEventStream } from "../components/EventStream";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { seg } from "../lib/api";
import {
  canDecide, levels, needsFromEvents, PIPELINE_EVENTS, pipelineStreamUrl, shouldRefresh, STATE_SYMBOL,
  type PipelineRunSummary, type PipelineRunView, type PipelineStep,
} from "../lib/pipelines";
import { can, roleIn } from "../lib/roles";
import { routePath, type Route } from "../lib/router";
import type { Session } from "../lib/types";

const runsUrl = (project: string) => `/api/v1/pipelines/projects/${seg(project)}/runs`;

function Link({ to, navigate, children }: { to: Route; navigate: Navigate; children: preact.ComponentChildren }) {
  return <a href={routePath(to)} onClick={(e) => { e.preventDefault(); navigate(to); }}>{children}</a>;
}

export function Pipelines({ project, navigate }: { project: string; navigate: Navigate }) {
  const [runs, setRuns] = useState<PipelineRunSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const reload = () => api.get<{ runs: PipelineRunSummary[] }>(`${runsUrl(project)}?limit=1000`)
    .then((b) => { setRuns(b.runs); setError(null); }, (e: Error) => setError(e.message));
  const live = useEventStream(pipelineStreamUrl(project), PIPELINE_EVENTS, (e) => { if (shouldRefresh(e, project, null)) void reload(); });
  // loaded at first and again once the stream is live (events between the two are not replayed)
  useEffect(() => { void reload(); }, [project, live === "live"]);

  return (
    <section>
      <Crumbs project={project} navigate={navigate} />
      <ProjectNav project={project} current="pipelines" navigate={navigate} />
      <h1>Pipeline runs of {project}</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count">{runs ? `${runs.length.toLocaleString("en")} pipeline runs` : "Loading…"} · <LiveState live={live} /></p>
      {runs && runs.length > 0 && (
        <table class="list pipelines">
          <thead><tr><th scope="col">Run</th><th scope="col">Pipeline</th><th scope="col">Status</th><th scope="col">Trigger</th>
            <th scope="col">Commit</th><th scope="col">Started</th><th scope="col">Finished</th></tr></thead>
          <tbody>
            {runs.map((r) => (
              <tr key={r.id}>
                <th scope="row"><Link to={{ page: "pipeline", project, runId: r.id }} navigate={navigate}>{r.id}</Link></th>
                <td>{r.pipeline}</td>
                <td class={`status-${r.status}`}>{r.status}</td>
                <td>{r.trigger_kind}</td>
                <td>{r.commit ? <code>{r.commit.slice(0, 12)}</code> : "—"}</td>
                <td>{r.started_at ?? ""}</td>
                <td>{r.finished_at ?? (r.status === "running" ? "not yet" : "")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const fmt = (v: unknown) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(6)) : JSON.stringify(v));

function KeyValues({ label, values }: { label: string; values: Record<string, unknown> | null }) {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return null;
  return (<><dt>{label}</dt><dd><ul class="plain">{entries.map(([k, v]) => <li key={k}><code>{k}</code>: {typeof v === "string" ? v : fmt(v)}</li>)}</ul></dd></>);
}

function Comparisons({ items }: { items: Record<string, unknown>[] }) {
  return (
    <table class="list comparisons">
      <caption>Gate decisions</caption>
      <thead><tr><th scope="col">Check</th><th scope="col">Numbers compared</th><th scope="col">Result</th></tr></thead>
      <tbody>
        {items.map((c, i) => {
          const champion = c.kind === "champion";
          const what = champion ? `champion ${String(c.model)} on ${String(c.metric)} (${String(c.direction)})` : String(c.condition ?? c.kind);
          const numbers = champion
            ? `candidate ${fmt(c.candidate)} vs champion ${fmt(c.champion)}: improvement ${fmt(c.improvement)} (needs ≥ ${fmt(c.min_improvement)}); seeds ${fmt(c.candidate_seeds)}/${fmt(c.champion_seeds)} (min ${fmt(c.min_seeds)})`
            : Object.entries((c.values ?? {}) as Record<string, unknown>).map(([k, v]) => `${k} = ${fmt(v)}`).join(", ");
          return <tr key={i}><td>{what}</td><td>{numbers}</td><td class={c.passed ? "status-succeeded" : "status-failed"}>{c.passed ? "passed" : "failed"}</td></tr>;
        })}
      </tbody>
    </table>
  );
}

interface DecideProps { step: PipelineStep; url: string; onDone: (v: PipelineRunView | null, err: string | null) => void }

function Decide({ step, url, onDone }: DecideProps) {
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const id = `comment-${step.id}`;
  const send = async (what: "approve" | "reject") => {
    setBusy(true);
    try {
      onDone(await api.post<PipelineRunView>(`${url}/steps/${seg(step.id)}/${what}`, { comment }), null);
    } catch (e) {
      onDone(null, (e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    // Enter in the comment decides nothing: approving and rejecting are each an explicit button.
    <form class="decide" onSubmit={(e) => e.preventDefault()}>
      <label for={id}>Comment on step {step.id}</label>
      <input id={id} type="text" value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
      <button type="button" disabled={busy} onClick={() => void send("approve")}>Approve {step.id}</button>
      <button type="button" disabled={busy} onClick={() => void send("reject")}>Reject {step.id}</button>
    </form>
  );
}

interface RunProps { project: string; runId: string; session: Session; navigate: Navigate }

export function PipelineRunPage({ project, runId, session, navigate }: RunProps) {
  const [run, setRun] = useState<PipelineRunView | null>(null);
  const [needs, setNeeds] = useState<Record<string, string[]>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const url = `${runsUrl(project)}/${seg(runId)}`;
  const reload = () => api.get<PipelineRunView>(url)
    .then((v) => { setRun(v); return JSON.stringify(v); }, (e: Error) => { setError(e.message); return null; });
  // after an event, read until the run shows a change (the service's read model may lag the event)
  const live = useEventStream(pipelineStreamUrl(project), PIPELINE_EVENTS, (e) => {
    if (!shouldRefresh(e, project, runId)) return;
    const before = JSON.stringify(run);
    void reloadUntil(reload, (now) => now === null || now !== before);
  });

  useEffect(() => {
    void reload();
    // the edges do not change during a run: read them once from the run's start event
    api.get<{ events: { type: string; data: Record<string, unknown> }[] }>(`${url}/events`)
      .then((b) => setNeeds(needsFromEvents(b.events)), (e: Error) => setError(e.message));
  }, [project, runId]);
  useEffect(() => { if (live === "live") void reload(); }, [live]);

  const role = roleIn(session, project);
  const cancel = async () => {
    setBusy(true);
    try {
      setRun(await api.post<PipelineRunView>(`${url}/cancel`, { reason: "cancelled from the web app" }));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const decided = (v: PipelineRunView | null, err: string | null) => {
    if (v && Array.isArray(v.steps)) setRun(v);
    else if (!err) void reload();
    setError(err);
  };

  return (
    <section>
      <Crumbs project={project} here={`pipeline run ${runId}`} navigate={navigate} />
      <ProjectNav project={project} current="pipelines" navigate={navigate} />
      <h1>Pipeline {run?.pipeline ?? ""} run {runId} {run && <span class={`badge status-${run.status}`}>{run.status}</span>}</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count"><LiveState live={live} /></p>
      {run && (
        <>
          <dl class="facts">
            <dt>Trigger</dt><dd>{String(run.trigger.kind ?? "")}{run.trigger.commit ? ` ${String(run.trigger.commit)}` : ""}{run.trigger.actor ? ` by ${String(run.trigger.actor)}` : ""}</dd>
            <dt>Started</dt><dd>{run.started_at ?? ""}</dd>
            <dt>Finished</dt><dd>{run.finished_at ?? "not yet"}</dd>
            {run.cancel_requested && run.status === "running" && <><dt>Cancel</dt><dd>requested</dd></>}
            <KeyValues label="Params" values={run.params} />
          </dl>
          {can(role, "pipeline.cancel") && run.status === "running" && (
            <p><button type="button" disabled={busy || run.cancel_requested} onClick={() => void cancel()}>
              {run.cancel_requested ? "Cancelling…" : "Cancel run"}</button></p>
          )}
          <h2>Steps</h2>
          <ol class="dag" aria-label="Steps by level">
            {levels(run.steps, needs).map((lvl, i) => (
              <li key={i} class="dag-level">
                <span class="dag-level-name">level {i}</span>
                <ul>
                  {lvl.map((s) => (
                    <li key={s.id} class={`dag-step step-${s.state}`}>
                      <a href={`#step-${s.id}`}><span aria-hidden="true">{STATE_SYMBOL[s.state] ?? "?"} </span>{s.id}</a>
                      <span class="dag-state">{s.state.replace("_", " ")}</span>
                      {(needs[s.id] ?? []).length > 0 && <span class="dag-needs">← {needs[s.id]!.join(", ")}</span>}
                    </li>
                  ))}
                </ul>
              </li>
            ))}
          </ol>
          {run.steps.map((s) => {
            const job: Route | null = s.job_id ? { page: "job", project, jobId: s.job_id } : null;
            const reg: Route | null = s.run_id ? { page: "run", project, runId: s.run_id } : null;
            return (
              <article key={s.id} id={`step-${s.id}`} class="step-detail">
                <h3>{s.id} <span class={`badge step-${s.state}`}>{s.state.replace("_", " ")}</span></h3>
                <dl class="facts">
                  <dt>Kind</dt><dd>{s.kind}</dd>
                  <dt>Attempt</dt><dd>{s.attempt}</dd>
                  {s.reason && <><dt>Reason</dt><dd>{s.reason}</dd></>}
                  {s.message && <><dt>Message</dt><dd>{s.message}</dd></>}
                  {job && <><dt>Job</dt><dd><Link to={job} navigate={navigate}>{s.job_id}</Link></dd></>}
                  {reg && <><dt>Run</dt><dd><Link to={reg} navigate={navigate}>{s.run_id}</Link></dd></>}
                  {s.source_run && <><dt>Cached from</dt><dd><Link to={{ page: "pipeline", project, runId: s.source_run }} navigate={navigate}>{s.source_run}</Link></dd></>}
                  {s.required_role && <><dt>Needs role</dt><dd>{s.required_role}</dd></>}
                  {s.decided_by && <><dt>Decided by</dt><dd>{s.decided_by.actor ?? ""}{s.decided_by.role ? ` (${s.decided_by.role})` : ""}</dd></>}
                  <KeyValues label="Outputs" values={s.outputs} />
                  <KeyValues label="Metrics" values={s.metrics} />
                </dl>
                {s.comparisons && s.comparisons.length > 0 && <Comparisons items={s.comparisons} />}
                {canDecide(role, s) && <Decide step={s} url={url} onDone={decided} />}
                {s.state === "waiting_approval" && !canDecide(role, s) && (
                  <p class="help">Waiting for someone with role {s.required_role} or higher (yours: {role ?? "none"}).</p>
                )}
              </article>
            );
          })}
        </>
      )}
    </section>
  );
}

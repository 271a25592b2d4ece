// A project's sweeps (objective, state, trials done, best value) and one sweep: its facts, a
// parallel coordinates plot of the trials and the trial table (sortable by the objective). Both
// pages follow the stream's sweep.* events and read the scheduler's view again on each one that
// changes something (lib/sweeps.ts shouldReload), so a trial that starts or ends shows at once.
import type { ComponentChildren } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { LiveState, useEventStream } from "../components/EventStream";
import { ParallelCoords } from "../components/ParallelCoords";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { seg } from "../lib/api";
import { formatNumber, makeAxis } from "../lib/parcoords";
import { can, roleIn } from "../lib/roles";
import { routePath, type Route } from "../lib/router";
import { progressText, shouldReload, sortTrials, SWEEP_EVENTS, sweepStreamUrl, type SortKey, type Sweep,
  type SweepSummary, type SweepTable } from "../lib/sweeps";
import type { Session } from "../lib/types";
import "./sweeps.css";

interface Props { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }

const sweepsUrl = (project: string) => `/api/v1/scheduler/projects/${seg(project)}/sweeps`;
const num = (v: number | null | undefined) => (v === null || v === undefined ? "—" : formatNumber(v));

function Link({ to, navigate, children }: { to: Route; navigate: Navigate; children: ComponentChildren }) {
  return <a href={routePath(to)} onClick={(e) => { e.preventDefault(); navigate(to); }}>{children}</a>;
}

export function Sweeps({ project = "", session, navigate }: Props) {
  const [sweeps, setSweeps] = useState<SweepSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const live = useEventStream(sweepStreamUrl(project), SWEEP_EVENTS, (e) => { if (shouldReload(e, project)) setTick((t) => t + 1); });

  useEffect(() => {
    let gone = false;
    api.get<{ sweeps: SweepSummary[] }>(`${sweepsUrl(project)}?limit=200`)
      .then((b) => { if (!gone) { setSweeps(b.sweeps); setError(null); } }, (e: Error) => { if (!gone) setError(e.message); });
    return () => { gone = true; };
  }, [project, tick, live === "live"]);

  return (
    <section>
      <Crumbs project={project} navigate={navigate} />
      <ProjectNav project={project} current="sweeps" navigate={navigate} />
      <h1>Sweeps of {project} <span class="role">your role: {roleIn(session, project) ?? "none"}</span></h1>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count">{sweeps ? `${sweeps.length} sweeps` : "Loading…"} · <LiveState live={live} /></p>
      {sweeps && sweeps.length === 0 && <p class="help">No sweeps yet: <code>cairn sweeps create sweep.yaml</code> (docs/sweeps.md).</p>}
      {sweeps && sweeps.length > 0 && (
        <table class="list sweeps">
          <thead><tr><th scope="col">Sweep</th><th scope="col">Objective</th><th scope="col">Method</th><th scope="col">State</th>
            <th scope="col">Trials done</th><th scope="col">Running</th><th scope="col">Best value</th><th scope="col">Created</th></tr></thead>
          <tbody>{sweeps.map((s) => (
            <tr key={s.id}>
              <th scope="row"><Link to={{ page: "sweep", project, sweepId: s.id }} navigate={navigate}>{s.name}</Link>
                <span class="help"> {s.id}</span></th>
              <td>{s.goal} {s.metric}</td>
              <td>{s.method}</td>
              <td class={`sweep-state-${s.status}`}>{s.status}{s.reason ? ` (${s.reason})` : ""}</td>
              <td>{progressText(s.trial_counts)}</td>
              <td>{s.trial_counts.running ?? 0}</td>
              <td>{s.best_trial ? `${num(s.best_trial.value)} (trial ${s.best_trial.number})` : "—"}</td>
              <td>{s.created_at} <span class="help">by {s.created_by}</span></td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </section>
  );
}

export function SweepPage({ project = "", sweepId = "", session, navigate }: Props) {
  const [sweep, setSweep] = useState<Sweep | null>(null);
  const [table, setTable] = useState<SweepTable | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: "value", desc: false });
  const [stopping, setStopping] = useState(false);
  const live = useEventStream(sweepStreamUrl(project), SWEEP_EVENTS,
    (e) => { if (shouldReload(e, project, sweepId)) setTick((t) => t + 1); });
  const url = `${sweepsUrl(project)}/${seg(sweepId)}`;

  useEffect(() => {
    let gone = false;
    Promise.all([api.get<Sweep>(url), api.get<SweepTable>(`${url}/table`)]).then(([s, t]) => {
      if (!gone) { setSweep(s); setTable(t); setError(null); }
    }, (e: Error) => { if (!gone) setError(e.message); });
    return () => { gone = true; };
  }, [url, tick, live === "live"]);

  const pc = useMemo(() => {
    if (!table) return null;
    const rows = table.rows.map((r) => ({
      id: String(r.trial), label: `trial ${r.trial} (${r.state})`,
      href: r.run_id ? routePath({ page: "run", project, runId: r.run_id }) : undefined,
      values: { ...r.params, [table.metric]: (r[table.metric] as number | null | undefined) ?? null },
    }));
    const axes = [...table.dimensions.map((d) => makeAxis(d.name, rows.map((r) => r.values[d.name]), d)),
      makeAxis(table.metric, rows.map((r) => r.values[table.metric]))];
    return { rows, axes };
  }, [table, project]);

  const role = roleIn(session, project);
  const stop = () => {
    setStopping(true);
    api.post<Sweep>(`${url}/stop`, { reason: "stopped from the web UI" })
      .then((s) => { setSweep((cur) => (cur ? { ...cur, ...s } : s)); setError(null); }, (e: Error) => setError(e.message))
      .finally(() => setStopping(false));
  };
  const paramNames = table?.dimensions.map((d) => d.name) ?? [];
  const trials = sweep ? sortTrials(sweep.trials, sort.key, sweep.goal, sort.desc) : [];
  const sortBy = (key: SortKey) => setSort((s) => ({ key, desc: s.key === key ? !s.desc : false }));
  const ariaSort = (key: SortKey) => (sort.key !== key ? "none" : key === "value"
    ? ((sweep?.goal === "maximize") !== sort.desc ? "descending" : "ascending") : sort.desc ? "descending" : "ascending");

  return (
    <section>
      <Crumbs project={project} here={`sweep ${sweep?.name ?? sweepId}`} navigate={navigate} />
      <ProjectNav project={project} current="sweeps" navigate={navigate} />
      <h1>Sweep {sweep?.name ?? sweepId} <span class="role">your role: {role ?? "none"}</span></h1>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count">{sweep ? `${sweep.trials.length} trials` : "Loading…"} · <LiveState live={live} /></p>
      {sweep && (
        <>
          <dl class="facts">
            <dt>State</dt><dd class={`sweep-state-${sweep.status}`}>{sweep.status}{sweep.reason ? ` (${sweep.reason})` : ""}</dd>
            <dt>Objective</dt><dd>{sweep.goal} {sweep.metric}</dd>
            <dt>Method</dt><dd>{sweep.method}</dd>
            <dt>Trials done</dt><dd>{progressText(sweep.trial_counts, sweep.spec.budget?.max_trials)} · {sweep.trial_counts.running ?? 0} running</dd>
            <dt>Best</dt><dd>{sweep.best_trial ? `${num(sweep.best_trial.value)} (trial ${sweep.best_trial.number})` : "none yet"}</dd>
            <dt>Created</dt><dd>{sweep.created_at} by {sweep.created_by}</dd>
          </dl>
          {can(role, "sweep.stop") && sweep.status === "running" && (
            <div class="toolbar"><button type="button" onClick={stop} disabled={stopping}>Stop sweep</button>
              <span class="help">No new trials; running trials are cancelled.</span></div>
          )}
          <h2>Trials</h2>
          {pc && pc.rows.length > 0 && (
            <ParallelCoords axes={pc.axes} rows={pc.rows} metric={table!.metric}
              caption={`Trials: params vs ${table!.metric} (${table!.goal})`}
              onOpen={(r) => { const t = table!.rows.find((x) => String(x.trial) === r.id); if (t?.run_id) navigate({ page: "run", project, runId: t.run_id }); }} />
          )}
          {trials.length === 0 ? <p class="help">No trial has started yet.</p> : (
            <div class="scroll-x">
              <table class="list sweep-trials">
                <thead><tr>
                  <th scope="col" aria-sort={ariaSort("number")}><button type="button" class="sweep-sort" onClick={() => sortBy("number")}>Trial</button></th>
                  <th scope="col">State</th>
                  <th scope="col" aria-sort={ariaSort("value")}><button type="button" class="sweep-sort" onClick={() => sortBy("value")}>{sweep.metric}</button></th>
                  <th scope="col">Step</th>
                  {paramNames.map((p) => <th scope="col" key={p}>{p}</th>)}
                  <th scope="col">Run</th><th scope="col">Job</th>
                </tr></thead>
                <tbody>{trials.map((t) => (
                  <tr key={t.number} class={sweep.best_trial?.number === t.number ? "sweep-best" : ""}>
                    <th scope="row">{t.number}{sweep.best_trial?.number === t.number && <span class="badge">best</span>}</th>
                    <td class={`trial-${t.state}`}>{t.state}{t.error ? `: ${t.error}` : ""}</td>
                    <td>{num(t.value)}</td>
                    <td>{t.step ?? "—"}</td>
                    {paramNames.map((p) => { const v = t.params[p]; return <td key={p}>{v === undefined ? "—" : typeof v === "number" ? formatNumber(v) : String(v)}</td>; })}
                    <td>{t.run_id ? <Link to={{ page: "run", project, runId: t.run_id }} navigate={navigate}>{t.run_id}</Link> : "—"}</td>
                    <td>{t.job_id ? <Link to={{ page: "job", project, jobId: t.job_id }} navigate={navigate}>{t.job_id}</Link> : "—"}</td>
                  </tr>
                ))}</tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}

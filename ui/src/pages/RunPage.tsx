// One run: status, times, notes, params and tags, charts for every metric key (training metrics,
// then the SDK's system metrics), the run's media (by key, with a step slider), the code and
// artifact browsers, the reproducibility record, the datasets it used, the lineage around it and,
// for a job's run, the job and its log tail.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { MetricChart, type XAxis } from "../components/MetricChart";
import { RunDatasets } from "../components/RunDatasets";
import { RunFiles } from "../components/RunFiles";
import { RunJob } from "../components/RunJob";
import { RunLineage } from "../components/RunLineage";
import { RunMedia } from "../components/RunMedia";
import { RunNotes } from "../components/RunNotes";
import { RunRecord } from "../components/RunRecord";
import { seg } from "../lib/api";
import { can, roleIn } from "../lib/roles";
import { JOB_TAG, splitMetricKeys, visibleTags } from "../lib/runpage";
import { clampWeight, SMOOTH_MAX } from "../lib/smooth";
import type { MetricSummary, Run, Session } from "../lib/types";
import "./runpage.css";

function KeyValues({ title, values }: { title: string; values: Record<string, string> }) {
  const keys = Object.keys(values).sort();
  return (
    <section class="kv">
      <h2>{title}</h2>
      {keys.length === 0 ? <p class="help">none</p> : (
        <table class="list">
          <thead><tr><th scope="col">Key</th><th scope="col">Value</th></tr></thead>
          <tbody>{keys.map((k) => <tr key={k}><th scope="row">{k}</th><td>{values[k]}</td></tr>)}</tbody>
        </table>
      )}
    </section>
  );
}

interface ChartsProps { project: string; runId: string; keys: string[]; xAxis: XAxis; smoothing: number }

function Charts({ project, runId, keys, xAxis, smoothing }: ChartsProps) {
  return <>{keys.map((k) => <MetricChart key={k} project={project} runId={runId} metricKey={k} xAxis={xAxis} smoothing={smoothing} />)}</>;
}

interface Props { project: string; runId: string; session?: Session; navigate: Navigate }

export function RunPage({ project, runId, session, navigate }: Props) {
  const [run, setRun] = useState<Run | null>(null);
  const [keys, setKeys] = useState<string[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [xAxis, setXAxis] = useState<XAxis>("step");
  const [smoothing, setSmoothing] = useState(0);
  // The shell passes the session to the pages; until it passes it here too, ask for it.
  const [me, setMe] = useState<Session | null>(session ?? null);

  useEffect(() => {
    if (!session) api.current().then(setMe, () => setMe(null));
  }, [session]);

  useEffect(() => {
    api.get<Run>(`/api/v1/registry/projects/${seg(project)}/runs/${seg(runId)}`).then(setRun,
      (e: Error) => setError(e.message));
    api.get<{ summaries: MetricSummary[] }>(`/api/v1/metrics/projects/${seg(project)}/runs/${seg(runId)}/metrics/summary`)
      .then((b) => setKeys(b.summaries.map((s) => s.key)), (e: Error) => setError(e.message));
  }, [project, runId]);

  const split = keys ? splitMetricKeys(keys) : null;
  const canEdit = me ? can(roleIn(me, project), "run.edit") : false;
  const jobId = run?.tags[JOB_TAG];
  const chartProps = { project, runId, xAxis, smoothing };

  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/projects" onClick={(e) => { e.preventDefault(); navigate({ page: "projects" }); }}>Projects</a>
        <span aria-hidden="true"> / </span>
        <a href={`/projects/${seg(project)}/runs`}
           onClick={(e) => { e.preventDefault(); navigate({ page: "runs", project }); }}>{project}</a>
        <span aria-hidden="true"> / </span><span>{run?.name || runId}</span>
      </nav>
      {error && <p class="error" role="alert">{error}</p>}
      {run && (
        <>
          <h1>{run.name || run.id} <span class={`badge status-${run.status}`}>{run.status}</span></h1>
          <dl class="facts">
            <dt>Run id</dt><dd><code>{run.id}</code></dd>
            <dt>Created</dt><dd>{run.created_at} by {run.created_by}</dd>
            <dt>Started</dt><dd>{run.started_at ?? "—"}</dd>
            <dt>Ended</dt><dd>{run.ended_at ?? "—"}{run.status_message ? ` (${run.status_message})` : ""}</dd>
            {run.description && <><dt>Description</dt><dd>{run.description}</dd></>}
          </dl>
          <RunNotes project={project} run={run} canEdit={canEdit} onSaved={setRun} />
          <div class="columns">
            <KeyValues title="Params" values={run.params} />
            <KeyValues title="Tags" values={visibleTags(run.tags)} />
          </div>
        </>
      )}
      <section>
        <h2>Metrics</h2>
        <div class="toolbar">
          <label for="x-axis">X axis</label>
          <select id="x-axis" value={xAxis} onChange={(e) => setXAxis((e.target as HTMLSelectElement).value as XAxis)}>
            <option value="step">step</option>
            <option value="time">time</option>
            <option value="relative">relative (seconds)</option>
          </select>
          <span class="run-smooth">
            <label for="run-smoothing">Smoothing</label>{" "}
            <input id="run-smoothing" type="range" min="0" max={SMOOTH_MAX} step="0.01" value={smoothing}
                   aria-valuetext={smoothing === 0 ? "off" : smoothing.toFixed(2)}
                   onInput={(e) => setSmoothing(clampWeight(Number((e.target as HTMLInputElement).value)))} />{" "}
            <output for="run-smoothing" id="run-smoothing-value">{smoothing === 0 ? "off" : smoothing.toFixed(2)}</output>
          </span>
          <span class="help">Drag across a chart to zoom: the range is fetched again at full detail.</span>
        </div>
        {keys === null && !error && <p role="status">Loading…</p>}
        {split && split.training.length === 0 && <p>No metrics logged.</p>}
        {split && <Charts keys={split.training} {...chartProps} />}
      </section>
      {split && split.system.length > 0 && (
        <section aria-labelledby="run-system-h">
          <h2 id="run-system-h">System metrics</h2>
          <p class="help">CPU, memory, disk, network and GPU use sampled while the run ran (<code>system/…</code>).</p>
          <Charts keys={split.system} {...chartProps} />
        </section>
      )}
      <RunMedia project={project} runId={runId} />
      <RunFiles project={project} runId={runId} />
      <RunRecord project={project} runId={runId} />
      <div class="columns">
        <RunDatasets project={project} runId={runId} navigate={navigate} />
        {jobId && <RunJob project={project} jobId={jobId} navigate={navigate} />}
      </div>
      <RunLineage project={project} runId={runId} navigate={navigate} />
    </section>
  );
}

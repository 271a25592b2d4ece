// One run: status, times, params, tags and a chart for every metric key.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { MetricChart, type XAxis } from "../components/MetricChart";
import { RunFiles } from "../components/RunFiles";
import { seg } from "../lib/api";
import type { MetricSummary, Run } from "../lib/types";

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

interface Props { project: string; runId: string; navigate: Navigate }

export function RunPage({ project, runId, navigate }: Props) {
  const [run, setRun] = useState<Run | null>(null);
  const [keys, setKeys] = useState<string[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [xAxis, setXAxis] = useState<XAxis>("step");

  useEffect(() => {
    api.get<Run>(`/api/v1/registry/projects/${seg(project)}/runs/${seg(runId)}`).then(setRun,
      (e: Error) => setError(e.message));
    api.get<{ summaries: MetricSummary[] }>(`/api/v1/metrics/projects/${seg(project)}/runs/${seg(runId)}/metrics/summary`)
      .then((b) => setKeys(b.summaries.map((s) => s.key).sort()), (e: Error) => setError(e.message));
  }, [project, runId]);

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
          <div class="columns">
            <KeyValues title="Params" values={run.params} />
            <KeyValues title="Tags" values={run.tags} />
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
          </select>
          <span class="help">Drag across a chart to zoom: the range is fetched again at full detail.</span>
        </div>
        {keys === null && !error && <p role="status">Loading…</p>}
        {keys && keys.length === 0 && <p>No metrics logged.</p>}
        {keys?.map((k) => <MetricChart key={`${k}-${xAxis}`} project={project} runId={runId} metricKey={k} xAxis={xAxis} />)}
      </section>
      <RunFiles project={project} runId={runId} />
    </section>
  );
}

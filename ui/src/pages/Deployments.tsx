// A project's deployments by environment, and one deployment: its replicas, its traffic and
// latency over the monitor's windows, drift per column over time, and its alerts and rules.
// Editors scale and roll back (a protected environment also needs an admin: the API refuses and
// the page shows its message); viewers see no buttons.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { reloadUntil, useAction } from "../lib/action";
import { AlertRules, AlertTable, type Rule } from "../components/AlertTable";
import { DeployChart } from "../components/DeployChart";
import { DriftHeatmap } from "../components/DriftHeatmap";
import { LiveState, useEventStream } from "../components/EventStream";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { seg } from "../lib/api";
import {
  byEnvironment, deploymentState, describeReplicas, describeTraffic, describeVersion, endpointOf, hostPort, scaleProblem,
  type DeploymentRow, type Environment, type Replica, type TrafficSplit,
} from "../lib/deployments";
import { hasLatency, heatmap, windowSeries, type Alert, type DriftWindow, type MonitorWindow } from "../lib/monitor";
import { can, roleIn } from "../lib/roles";
import { routePath } from "../lib/router";
import type { Session } from "../lib/types";
import "./deployments.css";

interface Props { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }

const base = (project: string) => `/api/v1/deployments/projects/${seg(project)}`;
const monitorBase = (project: string, name: string) => `/api/v1/monitor/projects/${seg(project)}/deployments/${seg(name)}`;
const DEPLOYMENT_EVENTS = ["deployment.created", "deployment.version_changed", "deployment.scaled", "deployment.traffic_split",
  "deployment.replica_started", "deployment.replica_stopped", "deployment.replica_failed", "deployment.deleted",
  "environment.protected", "environment.unprotected"] as const;
const ALERT_EVENTS = ["alert.fired", "alert.resolved", "alert_rule.created", "alert_rule.updated", "alert_rule.deleted"] as const;
const SINCE = "6h"; // how far back the charts and the heatmap look
const HEATMAP_WINDOWS = 60; // the newest windows the heatmap shows (one row of cells stays readable)

export function Deployments({ project = "", session, navigate }: Props) {
  const [rows, setRows] = useState<DeploymentRow[] | null>(null);
  const [envs, setEnvs] = useState<Environment[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = async (): Promise<string | null> => {
    try {
      const [d, e] = await Promise.all([api.get<{ deployments: DeploymentRow[] }>(`${base(project)}/deployments`),
        api.get<{ environments: Environment[] }>(`${base(project)}/environments`)]);
      setRows(d.deployments);
      setEnvs(e.environments);
      setError(null);
      return JSON.stringify([d.deployments, e.environments]);
    } catch (err) {
      setError((err as Error).message);
      return null;
    }
  };
  useEffect(() => { void load(); }, [project]);
  const live = useEventStream(`/api/v1/events/stream?${new URLSearchParams({ project, types: "deployment.*,environment.*" })}`,
    DEPLOYMENT_EVENTS, () => {
      // read until the read shows a change: the deployments service's read model may lag the event
      const before = JSON.stringify([rows, envs]);
      void reloadUntil(load, (now) => now === null || now !== before);
    });
  const groups = rows ? byEnvironment(rows, envs) : null;
  return (
    <section>
      <Crumbs project={project} navigate={navigate} />
      <ProjectNav project={project} current="deployments" navigate={navigate} />
      <h1>Deployments of {project} <span class="role">your role: {roleIn(session, project) ?? "none"}</span> <LiveState live={live} /></h1>
      {error && <p class="error" role="alert">{error}</p>}
      {!groups ? <p role="status">Loading…</p> : groups.length === 0 ? <p>No deployments yet (<code>cairn deploy</code>, docs/deployments.md).</p> : groups.map((g) => (
        <section class="deploy-env" key={g.name} aria-labelledby={`env-${g.name}`}>
          <h2 id={`env-${g.name}`}>{g.name} {g.protected && <span class="badge deploy-protected">protected: changes need an admin</span>}</h2>
          {g.deployments.length === 0 ? <p>Nothing deployed here.</p> : (
            <table class="list">
              <thead><tr><th scope="col">Deployment</th><th scope="col">Model</th><th scope="col">Version</th><th scope="col">Replicas</th>
                <th scope="col">State</th><th scope="col">Traffic split</th><th scope="col">Requests/s (last minute)</th><th scope="col">Error rate</th></tr></thead>
              <tbody>
                {g.deployments.map((d) => {
                  const r = { page: "deployment" as const, project, name: d.name };
                  const state = deploymentState(d.replicas);
                  return (
                    <tr key={d.name} data-deployment={d.name}>
                      <th scope="row"><a href={routePath(r)} onClick={(e) => { e.preventDefault(); navigate(r); }}>{d.name}</a></th>
                      <td>{d.model}</td>
                      <td>{describeVersion(d)}</td>
                      <td class="deploy-replicas">{describeReplicas(d.replicas)}</td>
                      <td><span class={`badge deploy-state-${state}`}>{state}</span></td>
                      <td>{describeTraffic(d.traffic)}</td>
                      <td>{d.requests_per_s ?? "not sampled"}</td>
                      <td>{d.error_rate == null ? "none" : `${(d.error_rate * 100).toFixed(2)}%`}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
        </section>
      ))}
    </section>
  );
}

interface Config {
  name: string; environment: string; model: string; follows: string | null; version: number; previous_version: number | null;
  replicas: number; sample_rate: number; traffic: TrafficSplit | null; public: boolean; seq: number;
}

export function DeploymentPage({ project = "", name = "", session, navigate }: Props) {
  const role = roleIn(session, project);
  const [config, setConfig] = useState<Config | null>(null);
  const [replicas, setReplicas] = useState<Replica[] | null>(null);
  const [protectedEnv, setProtectedEnv] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const url = `${base(project)}/deployments/${seg(name)}`;

  const loadDeployment = async (): Promise<string | null> => {
    try {
      const [c, r, e] = await Promise.all([api.get<Config>(url), api.get<{ replicas: Replica[] }>(`${url}/replicas`),
        api.get<{ environments: Environment[] }>(`${base(project)}/environments`)]);
      setConfig(c);
      setReplicas(r.replicas);
      setProtectedEnv(e.environments.some((x) => x.name === c.environment && x.protected));
      setError(null);
      return JSON.stringify([c, r.replicas]);
    } catch (err) {
      setError((err as Error).message);
      return null;
    }
  };
  useEffect(() => { void loadDeployment(); }, [project, name]);
  const live = useEventStream(`/api/v1/events/stream?${new URLSearchParams({ project, types: "deployment.*,alert.*,alert_rule.*" })}`,
    [...DEPLOYMENT_EVENTS, ...ALERT_EVENTS], (e) => {
      if (e.aggregate === "deployment" && e.aggregate_id === name) {
        const before = JSON.stringify([config, replicas]);  // read until the read shows the change
        void reloadUntil(loadDeployment, (now) => now === null || now !== before);
      }
      if (e.aggregate === "alert" || e.aggregate === "alert_rule") monitorRef.current?.();
    });
  const monitorRef = useRef<(() => void) | null>(null);

  return (
    <section>
      <Crumbs project={project} here={`deployment ${name}`} navigate={navigate} />
      <ProjectNav project={project} current="deployments" navigate={navigate} />
      <h1>Deployment {name} <span class="role">your role: {role ?? "none"}</span> <LiveState live={live} /></h1>
      {error && <p class="error" role="alert">{error}</p>}
      {!config ? !error && <p role="status">Loading…</p> : (
        <>
          <dl class="facts">
            <dt>Environment</dt><dd>{config.environment} {protectedEnv && <span class="badge deploy-protected">protected</span>}</dd>
            <dt>Model</dt><dd>{config.model}</dd>
            <dt>Version</dt><dd>{describeVersion(config)}{config.previous_version != null && ` (before: v${config.previous_version})`}</dd>
            <dt>Endpoint</dt><dd>{(replicas && endpointOf(replicas)) ? <code>{endpointOf(replicas!)}</code> : "no replica serving yet"}</dd>
            <dt>Replicas</dt><dd class="deploy-desired">{replicas?.filter((r) => r.state === "started").length ?? 0} of {config.replicas} ready</dd>
            <dt>Traffic split</dt><dd>{describeTraffic(config.traffic)}</dd>
            <dt>Requests logged</dt><dd>{Math.round(config.sample_rate * 100)}%</dd>
          </dl>
          {can(role, "deployment.scale") && <DeployActions url={url} config={config} protectedEnv={protectedEnv} onDone={async () => { await loadDeployment(); }} />}
          <h2>Replicas</h2>
          {!replicas ? <p role="status">Loading…</p> : replicas.length === 0 ? <p>No replica has reported yet.</p> : (
            <table class="list deploy-replica-table">
              <thead><tr><th scope="col">Replica</th><th scope="col">State</th><th scope="col">Host:port</th><th scope="col">Version</th><th scope="col">Reason</th></tr></thead>
              <tbody>
                {replicas.map((r) => (
                  <tr key={r.replica_id}>
                    <th scope="row"><code>{r.replica_id}</code></th>
                    <td><span class={`badge deploy-replica-${r.state}`}>{r.state}</span></td>
                    <td>{hostPort(r.url)}</td>
                    <td>v{r.version}</td>
                    <td>{r.reason || ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
      <Monitoring project={project} name={name} reload={monitorRef} />
    </section>
  );
}

function DeployActions({ url, config, protectedEnv, onDone }: { url: string; config: Config; protectedEnv: boolean; onDone: () => Promise<void> }) {
  const [count, setCount] = useState(String(config.replicas));
  useEffect(() => setCount(String(config.replicas)), [config.replicas]); // scaled elsewhere: follow it
  const [confirming, setConfirming] = useState(false);
  const [busy, run] = useAction();
  const [message, setMessage] = useState<string | null>(null);
  const act = async (what: () => Promise<unknown>) => {
    await run(async () => {
      await what();
      await onDone();
    }, setMessage);
    setConfirming(false);
  };
  const scale = (e: Event) => {
    e.preventDefault();
    const problem = scaleProblem(count);
    if (problem) { setMessage(problem); return; }
    void act(() => api.post(`${url}/scale`, { replicas: Number(count.trim()) }));
  };
  return (
    <div class="card deploy-actions">
      {protectedEnv && <p class="help">{config.environment} is protected: scaling and rolling back need an admin.</p>}
      <form class="toolbar" onSubmit={scale} aria-label="Scale replicas" noValidate>
        <label for="deploy-replicas">Replicas</label>
        <input id="deploy-replicas" type="number" min={0} step={1} value={count} onInput={(e) => setCount((e.target as HTMLInputElement).value)} />
        <button type="submit" disabled={busy}>Scale</button>
      </form>
      {config.previous_version != null && (!confirming ? (
        <p><button type="button" disabled={busy} onClick={() => setConfirming(true)}>Roll back to v{config.previous_version}…</button></p>
      ) : (
        <div class="deploy-confirm" role="group" aria-label="Confirm the rollback">
          <p>Roll {config.name} back from v{config.version} to v{config.previous_version}? Its replicas restart on that version.</p>
          <button type="button" class="primary" disabled={busy} onClick={() => void act(() => api.post(`${url}/rollback`, {}))}>Roll back</button>{" "}
          <button type="button" disabled={busy} onClick={() => setConfirming(false)}>Cancel</button>
        </div>
      ))}
      {message && <p class="error" role="alert">{message}</p>}
    </div>
  );
}

function Monitoring({ project, name, reload }: { project: string; name: string; reload: { current: (() => void) | null } }) {
  const [windows, setWindows] = useState<MonitorWindow[] | null>(null);
  const [drift, setDrift] = useState<DriftWindow[] | null>(null);
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [rules, setRules] = useState<Rule[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const m = monitorBase(project, name);
  const load = async () => {
    try {
      const q = new URLSearchParams({ since: SINCE });
      const [w, d, a, r] = await Promise.all([
        api.get<{ windows: MonitorWindow[] }>(`${m}/windows?${q}`),
        api.get<{ windows: DriftWindow[] }>(`${m}/drift?${q}`),
        api.get<{ alerts: Alert[] }>(`/api/v1/monitor/projects/${seg(project)}/alerts?${new URLSearchParams({ state: "all", deployment: name })}`),
        api.get<{ rules: Rule[] }>(`${m}/rules`)]);
      setWindows(w.windows);
      setDrift(d.windows.slice(-HEATMAP_WINDOWS));
      setAlerts(a.alerts);
      setRules(r.rules);
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  reload.current = () => void load();
  useEffect(() => { void load(); }, [project, name]);
  const series = useMemo(() => windowSeries(windows ?? []), [windows]);
  const map = useMemo(() => heatmap(drift ?? []), [drift]);
  const traffic = useMemo(() => [{ label: "requests/s", values: series.requestsPerS, stroke: "#0b57b5" }], [series]);
  const errs = useMemo(() => [{ label: "errors/s", values: series.errorsPerS, stroke: "#a4161a" }], [series]);
  const latency = useMemo(() => [{ label: "p50", values: series.p50, stroke: "#1a6b34" },
    { label: "p95", values: series.p95, stroke: "#8a4b00" }, { label: "p99", values: series.p99, stroke: "#a4161a" }], [series]);
  return (
    <>
      <h2>Traffic <button type="button" class="deploy-refresh" onClick={() => void load()}>Refresh</button></h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!windows ? <p role="status">Loading…</p> : series.t.length === 0 ? <p>No closed windows in the last {SINCE} (sampled requests make them).</p> : (
        <div class="deploy-charts">
          <DeployChart id="requests" title="Requests per second" unit="requests/s" t={series.t} lines={traffic} />
          <DeployChart id="errors" title="Errors per second" unit="errors/s" t={series.t} lines={errs} />
          {hasLatency(series) ? <DeployChart id="latency" title="Latency" unit="ms" t={series.t} lines={latency} /> : <p>No latency figures.</p>}
        </div>
      )}
      <h2>Drift per column</h2>
      {!drift ? <p role="status">Loading…</p> : <DriftHeatmap map={map} />}
      <h2>Alerts</h2>
      {!alerts ? <p role="status">Loading…</p> : <AlertTable alerts={alerts} />}
      <h3>Rules</h3>
      {!rules ? <p role="status">Loading…</p> : <AlertRules rules={rules} />}
    </>
  );
}

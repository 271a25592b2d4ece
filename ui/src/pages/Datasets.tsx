// A project's datasets and one dataset: its versions, the file listing of a chosen version
// (filtered and paged, so a large manifest never floods the DOM), the diff between any two
// versions and the runs that used a version (lineage). A version pushed by someone else shows
// without a reload (the `dataset.version_created` event).
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { reloadUntil } from "../lib/action";
import { LiveState, useEventStream } from "../components/EventStream";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { DatasetDiffView } from "../components/DatasetDiff";
import { seg } from "../lib/api";
import { filterFiles, formatBytes, pageOf, runsOf, type DatasetRow, type DatasetVersion, type ManifestEntry } from "../lib/datasets";
import { roleIn } from "../lib/roles";
import { routePath } from "../lib/router";
import type { Session } from "../lib/types";
import "./datasets.css";

const base = (project: string) => `/api/v1/artifacts/projects/${seg(project)}/datasets`;
const streamOf = (project: string) => `/api/v1/events/stream?${new URLSearchParams({ project, types: "dataset.*" })}`;
const DATASET_EVENTS = ["dataset.version_created"] as const;
/** Files shown per page of a version's listing. */
export const FILES_PAGE = 100;

interface Props { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }

interface Listed extends DatasetRow { latest?: DatasetVersion }

export function Datasets({ project = "", session, navigate }: Props) {
  const [rows, setRows] = useState<Listed[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    try {
      const { datasets } = await api.get<{ datasets: DatasetRow[] }>(base(project));
      // The list has no sizes: each dataset's versions give its latest one's (few datasets a project).
      const full = await Promise.all(datasets.map(async (d) => {
        const v = await api.get<{ versions: DatasetVersion[] }>(`${base(project)}/${seg(d.name)}`);
        return { ...d, latest: v.versions[v.versions.length - 1] };
      }));
      setRows(full);
      setError(null);
      return full;
    } catch (e) {
      setError((e as Error).message);
      return null;
    }
  };
  useEffect(() => { void load(); }, [project]);
  const live = useEventStream(streamOf(project), DATASET_EVENTS, (e) => {
    const made = Number((e.data as { version?: unknown }).version);
    void reloadUntil(load, (rows) => rows === null || !Number.isFinite(made)
      || rows.some((r) => r.name === e.aggregate_id && (r.latest?.version ?? 0) >= made));
  });
  return (
    <section>
      <Crumbs project={project} navigate={navigate} />
      <ProjectNav project={project} current="datasets" navigate={navigate} />
      <h1>Datasets of {project} <span class="role">your role: {roleIn(session, project) ?? "none"}</span></h1>
      <p class="help">Push a version with <code>cairn datasets push</code> or the SDK's <code>push_dataset</code>. <LiveState live={live} /></p>
      {error && <p class="error" role="alert">{error}</p>}
      {!rows ? <p role="status">Loading…</p> : rows.length === 0 ? <p>No datasets yet.</p> : (
        <table class="list">
          <thead><tr><th scope="col">Dataset</th><th scope="col">Latest version</th><th scope="col">Size</th>
            <th scope="col">Files</th><th scope="col">Created</th><th scope="col">Updated</th></tr></thead>
          <tbody>
            {rows.map((d) => {
              const r = { page: "dataset" as const, project, name: d.name };
              return (
                <tr key={d.name}>
                  <th scope="row"><a href={routePath(r)} onClick={(e) => { e.preventDefault(); navigate(r); }}>{d.name}</a></th>
                  <td>v{d.latest_version}</td>
                  <td>{d.latest ? formatBytes(d.latest.total_size) : ""}</td>
                  <td>{d.latest?.files.toLocaleString("en") ?? ""}</td>
                  <td>{d.created_at}</td>
                  <td>{d.updated_at}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function DatasetPage({ project = "", name = "", session, navigate }: Props) {
  const [versions, setVersions] = useState<DatasetVersion[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [chosen, setChosen] = useState<number | null>(null);
  const url = `${base(project)}/${seg(name)}`;
  const load = async (): Promise<DatasetVersion[] | null> => {
    try {
      const b = await api.get<{ versions: DatasetVersion[] }>(url);
      setVersions(b.versions);
      setChosen((c) => c ?? b.versions[b.versions.length - 1]?.version ?? null);
      setError(null);
      return b.versions;
    } catch (e) {
      setError((e as Error).message);
      return null;
    }
  };
  useEffect(() => { void load(); }, [project, name]);
  const live = useEventStream(streamOf(project), DATASET_EVENTS, (e) => {
    if (e.aggregate_id !== name) return;
    const made = Number((e.data as { version?: unknown }).version);
    void reloadUntil(load, (vs) => vs === null || !Number.isFinite(made) || vs.some((v) => v.version === made));
  });

  return (
    <section>
      <Crumbs project={project} here={`dataset ${name}`} navigate={navigate} />
      <ProjectNav project={project} current="datasets" navigate={navigate} />
      <h1>Dataset {name} <span class="role">your role: {roleIn(session, project) ?? "none"}</span></h1>
      {error && <p class="error" role="alert">{error}</p>}
      <h2>Versions <span class="help"><LiveState live={live} /></span></h2>
      {!versions ? <p role="status">Loading…</p> : (
        <table class="list" aria-label="Versions">
          <thead><tr><th scope="col">Version</th><th scope="col">Files</th><th scope="col">Size</th><th scope="col">Created</th>
            <th scope="col">Manifest</th><th scope="col">Description</th><th scope="col"><span class="visually-hidden">Show files</span></th></tr></thead>
          <tbody>
            {[...versions].reverse().map((v) => (
              <tr key={v.version} class={v.version === chosen ? "dataset-chosen" : undefined}>
                <th scope="row">v{v.version}</th>
                <td>{v.files.toLocaleString("en")}</td>
                <td>{formatBytes(v.total_size)}</td>
                <td>{v.created_at} <span class="help">by {v.created_by}</span></td>
                <td><code title={v.manifest_digest}>{v.manifest_digest.slice(0, 12)}</code></td>
                <td>{v.description}</td>
                <td>
                  <button type="button" aria-pressed={v.version === chosen} onClick={() => setChosen(v.version)}>
                    {v.version === chosen ? "Shown" : "Show files"}<span class="visually-hidden"> of v{v.version}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {chosen !== null && <DatasetFiles key={chosen} project={project} name={name} version={chosen} navigate={navigate} />}
      {versions && versions.length >= 2 && <DatasetDiffView url={url} versions={versions.map((v) => v.version)} />}
    </section>
  );
}

function DatasetFiles({ project, name, version, navigate }: { project: string; name: string; version: number; navigate: Navigate }) {
  const [entries, setEntries] = useState<ManifestEntry[] | null>(null);
  const [runs, setRuns] = useState<string[] | null>(null);
  const [runsNote, setRunsNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [query, setQuery] = useState("");
  const [page, setPage] = useState(0);
  useEffect(() => {
    api.get<{ manifest: { entries: ManifestEntry[] } }>(`${base(project)}/${seg(name)}/versions/${version}`)
      .then((b) => setEntries(b.manifest.entries), (e: Error) => setError(e.message));
    const node = `dataset:${name}@v${version}`;
    api.get<{ nodes: { ref: string; kind: string }[] }>(
      `/api/v1/lineage/projects/${seg(project)}/impact?${new URLSearchParams({ node })}`)
      .then((b) => setRuns(runsOf(b.nodes)), (e: Error) => { setRuns([]); setRunsNote(e.message); });
  }, [project, name, version]);
  const shown = entries ? filterFiles(entries, query) : [];
  const p = pageOf(shown, page, FILES_PAGE);
  return (
    <div class="columns dataset-detail">
      <div>
        <h2>Files of v{version}</h2>
        {error && <p class="error" role="alert">{error}</p>}
        <div class="toolbar">
          <label for="dataset-filter">Filter paths</label>
          <input id="dataset-filter" type="search" value={query} aria-describedby="dataset-count"
                 onInput={(e) => { setQuery((e.target as HTMLInputElement).value); setPage(0); }} />
          <span id="dataset-count" class="help" role="status">
            {entries ? `${p.first}–${p.last} of ${shown.length.toLocaleString("en")} files` : "Loading…"}
          </span>
        </div>
        {entries && (
          <table class="list dataset-files" aria-label={`Files of v${version}`}>
            <thead><tr><th scope="col">Path</th><th scope="col">Size</th><th scope="col">Digest</th></tr></thead>
            <tbody>
              {p.items.map((f) => (
                <tr key={f.path}>
                  <th scope="row"><code>{f.path}</code>{f.kind === "symlink" && <span class="help"> → {f.target}</span>}</th>
                  <td>{formatBytes(f.size)}</td>
                  <td><code title={f.digest}>{f.digest.slice(0, 12)}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {p.pages > 1 && (
          <nav class="toolbar" aria-label="Pages of files">
            <button type="button" disabled={p.page === 0} onClick={() => setPage(p.page - 1)}>Previous page</button>
            <span>page {p.page + 1} of {p.pages}</span>
            <button type="button" disabled={p.page >= p.pages - 1} onClick={() => setPage(p.page + 1)}>Next page</button>
          </nav>
        )}
      </div>
      <div>
        <h2>Runs that used v{version}</h2>
        <p class="help">From the lineage graph (runs downstream of <code>dataset:{name}@v{version}</code>).</p>
        {runsNote && <p class="help">{runsNote}</p>}
        {!runs ? <p role="status">Loading…</p> : runs.length === 0 ? <p>No run has used this version.</p> : (
          <ul>
            {runs.map((id) => {
              const r = { page: "run" as const, project, runId: id };
              return <li key={id}><a href={routePath(r)} onClick={(e) => { e.preventDefault(); navigate(r); }}>{id}</a></li>;
            })}
          </ul>
        )}
      </div>
    </div>
  );
}

// A project's models and one model: its versions (each with the run it came from) and aliases
// with their history. Pointing an alias and removing one are controls only for roles allowed to
// (editor: any alias but `production`; admin: `production` and removal); others do not see them.
// Each version's lineage (what it was made from, where it went) is drawn for the chosen version.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { reloadUntil, useAction } from "../lib/action";
import { useEventStream } from "../components/EventStream";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { LineageView } from "../components/RunLineage";
import { seg } from "../lib/api";
import { aliasProblem, canRemoveAlias, canSetAlias, describeChange, hasAliasControls, type AliasChange } from "../lib/models";
import { roleIn } from "../lib/roles";
import { routePath } from "../lib/router";
import type { Session } from "../lib/types";

interface Model {
  id: string;
  name: string;
  description: string;
  latest_version: number | null;
  aliases: Record<string, number>;
  tags: Record<string, string>;
}

interface Version {
  version: number;
  run_id: string | null;
  artifact_digest: string | null; // null: registered through MLflow from a source Cairn does not hold
  files_unavailable?: { source: string; reason: string } | null;
  description: string;
  created_at: string;
  created_by: string;
  aliases: string[];
}

const base = (project: string) => `/api/v1/registry/projects/${seg(project)}/models`;
const MODEL_EVENTS = ["model_version.created", "model_version.alias_set", "model_version.alias_removed"] as const;

interface ListProps { project: string; session: Session; navigate: Navigate }

/** A read of the model page as text (alias histories in name order), to tell a new read from the last. */
function readKey(model: unknown, versions: unknown, history: Record<string, unknown>): string {
  return JSON.stringify([model, versions, Object.entries(history).sort(([a], [b]) => (a < b ? -1 : 1))]);
}

export function Models({ project, session, navigate }: ListProps) {
  const [models, setModels] = useState<Model[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.get<{ models: Model[] }>(base(project)).then((b) => setModels(b.models), (e: Error) => setError(e.message));
  }, [project]);
  return (
    <section>
      <Crumbs project={project} navigate={navigate} />
      <ProjectNav project={project} current="models" navigate={navigate} />
      <h1>Models of {project} <span class="role">your role: {roleIn(session, project) ?? "none"}</span></h1>
      {error && <p class="error" role="alert">{error}</p>}
      {!models ? <p role="status">Loading…</p> : models.length === 0 ? <p>No models yet.</p> : (
        <table class="list">
          <thead><tr><th scope="col">Model</th><th scope="col">Latest version</th><th scope="col">Aliases</th><th scope="col">Description</th></tr></thead>
          <tbody>
            {models.map((m) => {
              const r = { page: "model" as const, project, model: m.name };
              return (
                <tr key={m.name}>
                  <th scope="row"><a href={routePath(r)} onClick={(e) => { e.preventDefault(); navigate(r); }}>{m.name}</a></th>
                  <td>{m.latest_version != null ? `v${m.latest_version}` : "none"}</td>
                  <td>{Object.entries(m.aliases).map(([a, v]) => `${a} → v${v}`).join(", ") || "none"}</td>
                  <td>{m.description}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

interface ModelProps { project: string; model: string; session: Session; navigate: Navigate }

export function ModelPage({ project, model, session, navigate }: ModelProps) {
  const role = roleIn(session, project);
  const [info, setInfo] = useState<Model | null>(null);
  const [versions, setVersions] = useState<Version[] | null>(null);
  const [history, setHistory] = useState<Record<string, AliasChange[]>>({});
  const [error, setError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [alias, setAlias] = useState("staging");
  const [version, setVersion] = useState("");
  const [busy, run] = useAction();
  const [lineageOf, setLineageOf] = useState("");
  const url = `${base(project)}/${seg(model)}`;

  // resolves to what was read (as text, to compare a read with the one before it), null on failure
  const load = async (): Promise<string | null> => {
    try {
      const [m, vs] = await Promise.all([api.get<Model>(url), api.get<{ versions: Version[] }>(`${url}/versions`)]);
      const hist: Record<string, AliasChange[]> = {};
      await Promise.all(Object.keys(m.aliases).map(async (a) => {
        hist[a] = (await api.get<{ history: AliasChange[] }>(`${url}/aliases/${seg(a)}/history`)).history;
      }));
      setInfo(m);
      setVersions(vs.versions);
      setHistory(hist);
      setVersion((cur) => cur || String(m.latest_version ?? ""));
      setLineageOf((cur) => cur || String(m.latest_version ?? ""));
      setError(null);
      return readKey(m, vs.versions, hist);
    } catch (e) {
      setError((e as Error).message);
      return null;
    }
  };

  useEffect(() => { void load(); }, [project, model]);

  // Live: another person's alias move (or a new version) shows without a reload.
  const modelId = useRef<string | null>(null);
  modelId.current = info?.id ?? null;
  useEventStream(`/api/v1/events/stream?${new URLSearchParams({ project, types: "model_version.*" })}`, MODEL_EVENTS,
    (e) => {
      if (e.aggregate_id !== modelId.current) return;
      // read until the read shows a change: the registry's read model may lag the event
      const before = readKey(info, versions, history);
      void reloadUntil(load, (now) => now === null || now !== before);
    });

  const point = async (e: Event) => {
    e.preventDefault();
    const problem = aliasProblem(role, alias);
    if (problem) { setFormError(problem); return; }
    await run(async () => {
      await api.request("PUT", `${url}/aliases/${seg(alias)}`, { version: Number(version) });
      await load();
    }, setFormError);
  };

  const remove = async (a: string) => {
    await run(async () => {
      await api.request("DELETE", `${url}/aliases/${seg(a)}`);
      await load();
    }, setFormError);
  };

  return (
    <section>
      <Crumbs project={project} here={`model ${model}`} navigate={navigate} />
      <ProjectNav project={project} current="models" navigate={navigate} />
      <h1>Model {model} <span class="role">your role: {role ?? "none"}</span></h1>
      {error && <p class="error" role="alert">{error}</p>}
      {info?.description && <p>{info.description}</p>}

      <h2>Aliases</h2>
      {info && Object.keys(info.aliases).length === 0 && <p>No aliases.</p>}
      {info && Object.entries(info.aliases).map(([a, v]) => (
        <div class="alias" key={a}>
          <h3 class="alias-name"><code>{a}</code> → v{v}
            {canRemoveAlias(role) && (
              <button type="button" disabled={busy} aria-label={`Remove alias ${a}`} onClick={() => void remove(a)}>Remove</button>
            )}
          </h3>
          <ol class="history" aria-label={`History of ${a}`}>
            {(history[a] ?? []).map((c) => (
              <li key={c.seq}>{describeChange(c)} <span class="help">by {c.actor} at {c.time}</span></li>
            ))}
          </ol>
        </div>
      ))}

      {hasAliasControls(role) && versions && versions.length > 0 && (
        <form class="card alias-form" onSubmit={(e) => void point(e)} aria-label="Point an alias at a version">
          <h3>Point an alias</h3>
          <label for="alias-name">Alias</label>
          <input id="alias-name" type="text" value={alias} aria-describedby="alias-help"
                 onInput={(e) => setAlias((e.target as HTMLInputElement).value.trim())} />
          <p id="alias-help" class="help">
            {canSetAlias(role, "production") ? "Any alias, production included." : "Any alias but production (that needs an admin)."}
          </p>
          <label for="alias-version">Version</label>
          <select id="alias-version" value={version} onChange={(e) => setVersion((e.target as HTMLSelectElement).value)}>
            {versions.map((v) => <option key={v.version} value={String(v.version)}>v{v.version}</option>)}
          </select>
          <button type="submit" class="primary" disabled={busy}>Point {alias || "alias"} at v{version}</button>
          {formError && <p class="error" role="alert">{formError}</p>}
        </form>
      )}
      {!hasAliasControls(role) && formError && <p class="error" role="alert">{formError}</p>}

      <h2>Versions</h2>
      {!versions ? <p role="status">Loading…</p> : versions.length === 0 ? <p>No versions yet.</p> : (
        <table class="list">
          <thead><tr><th scope="col">Version</th><th scope="col">Run</th><th scope="col">Aliases</th>
            <th scope="col">Created</th><th scope="col">Artifact</th><th scope="col">Description</th></tr></thead>
          <tbody>
            {versions.map((v) => {
              const r = v.run_id ? { page: "run" as const, project, runId: v.run_id } : null;
              return (
                <tr key={v.version}>
                  <th scope="row">v{v.version}</th>
                  <td>{r ? <a href={routePath(r)} onClick={(e) => { e.preventDefault(); navigate(r); }}>{v.run_id}</a> : "none"}</td>
                  <td>{v.aliases.join(", ")}</td>
                  <td>{v.created_at} <span class="help">by {v.created_by}</span></td>
                  <td>{v.artifact_digest
                    ? <code title={v.artifact_digest}>{v.artifact_digest.slice(0, 12)}</code>
                    : <span class="help" title={v.files_unavailable?.reason ?? ""}>no files: {v.files_unavailable?.source ?? "unknown source"}</span>}</td>
                  <td>{v.description}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {versions && versions.length > 0 && lineageOf && (
        <section class="model-lineage">
          <div class="toolbar">
            <label for="lineage-version">Lineage of version</label>
            <select id="lineage-version" value={lineageOf}
                    onChange={(e) => setLineageOf((e.target as HTMLSelectElement).value)}>
              {versions.map((v) => <option key={v.version} value={String(v.version)}>v{v.version}</option>)}
            </select>
          </div>
          <LineageView key={lineageOf} project={project} nodeRef={`model:${info?.name ?? model}@v${lineageOf}`}
                       here="this version" navigate={navigate}
                       unseen="The lineage service has not seen this version yet." />
        </section>
      )}
    </section>
  );
}

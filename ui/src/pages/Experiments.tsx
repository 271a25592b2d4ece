// A project's experiments: name, description, tags, created, and a link to the runs table filtered
// to each. Editors create, rename and describe; admins archive and restore. A control the
// caller's role may not use is not rendered (the registry enforces the same rule). Live: an
// experiment made, renamed, tagged, archived or restored elsewhere shows without a reload.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { reloadUntil, useAction } from "../lib/action";
import { LiveState, useEventStream } from "../components/EventStream";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { seg } from "../lib/api";
import { experimentFilter, nameProblem, runsHref, type Experiment } from "../lib/experiments";
import { can, roleIn } from "../lib/roles";
import type { Session } from "../lib/types";
import "./experiments.css";

interface Props { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }

const EXPERIMENT_EVENTS = ["experiment.created", "experiment.updated", "experiment.archived",
  "experiment.restored", "experiment.tag_set"] as const;
const streamOf = (project: string) => `/api/v1/events/stream?${new URLSearchParams({ project, types: "experiment.*" })}`;

const base = (project: string) => `/api/v1/registry/projects/${seg(project)}/experiments`;

export function Experiments({ project = "", session, navigate }: Props) {
  const role = roleIn(session, project);
  const [items, setItems] = useState<Experiment[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [showArchived, setShowArchived] = useState(false);
  const [editing, setEditing] = useState<string | null>(null);
  const [busy, run] = useAction();

  // Only the newest read may set the list: a read that an event started before "Show archived"
  // was ticked must not put the unticked list back. A superseded read answers null, which also
  // ends the reloadUntil loop that started it (the newer read owns the list).
  const archivedNow = useRef(showArchived);
  archivedNow.current = showArchived;
  const latest = useRef(0);
  const load = async (): Promise<string | null> => {
    const archived = archivedNow.current;
    const mine = ++latest.current;
    try {
      const b = await api.get<{ experiments: Experiment[] }>(`${base(project)}?include_archived=${archived}`);
      if (mine !== latest.current || archived !== archivedNow.current) return null;
      setItems(b.experiments);
      setError(null);
      return JSON.stringify(b.experiments);
    } catch (e) {
      if (mine === latest.current) setError((e as Error).message);
      return null;
    }
  };
  useEffect(() => { void load(); }, [project, showArchived]);
  // an event means the list changed: read until it shows a change (the read model may lag it)
  const live = useEventStream(streamOf(project), EXPERIMENT_EVENTS, () => {
    const before = JSON.stringify(items);
    void reloadUntil(load, (now) => now === null || now !== before);
  });

  const act = (what: () => Promise<unknown>): Promise<boolean> => run(async () => {
    await what();
    await load();
  }, setError);

  return (
    <section>
      <Crumbs project={project} navigate={navigate} />
      <ProjectNav project={project} current="experiments" navigate={navigate} />
      <h1>Experiments of {project} <span class="role">your role: {role ?? "none"}</span></h1>
      <p class="help"><LiveState live={live} /></p>
      {can(role, "experiment.edit") && (
        <ExperimentForm title="New experiment" submit="Create experiment" idPrefix="new-exp" busy={busy}
                        onSave={(name, description) => act(() => api.post(base(project), { name, description }))} />
      )}
      {error && <p class="error" role="alert">{error}</p>}
      <div class="toolbar">
        <input id="exp-archived" type="checkbox" checked={showArchived}
               onChange={(e) => setShowArchived((e.target as HTMLInputElement).checked)} />
        <label for="exp-archived">Show archived experiments</label>
      </div>
      {!items ? <p role="status">Loading…</p> : items.length === 0 ? <p>No experiments yet.</p> : (
        <table class="list" aria-label="Experiments">
          <thead><tr><th scope="col">Experiment</th><th scope="col">Description</th><th scope="col">Tags</th>
            <th scope="col">Created</th><th scope="col">Runs</th>
            {(can(role, "experiment.edit") || can(role, "experiment.archive")) && <th scope="col">Actions</th>}</tr></thead>
          <tbody>
            {items.map((x) => {
              const href = runsHref(project, experimentFilter(x.id));
              return (
                <tr key={x.id} class={x.archived ? "exp-archived" : undefined}>
                  <th scope="row">{x.name}{x.archived ? <span class="badge"> archived</span> : null}</th>
                  <td>{x.description}</td>
                  <td>{Object.entries(x.tags).map(([k, v]) => `${k}=${v}`).join(", ")}</td>
                  <td>{x.created_at}</td>
                  <td><a href={href} onClick={(e) => {
                    e.preventDefault();
                    // The route has no filter field: Runs.tsx reads ?filter= when it mounts, so the
                    // link keeps its query and the app re-reads the location as on Back/Forward.
                    history.pushState(null, "", href);
                    dispatchEvent(new PopStateEvent("popstate"));
                  }}>Runs of {x.name}</a></td>
                  {(can(role, "experiment.edit") || can(role, "experiment.archive")) && (
                    <td><div class="exp-actions">
                      {can(role, "experiment.edit") && (editing === x.id
                        ? <ExperimentForm title={`Edit ${x.name}`} submit="Save" idPrefix={`edit-${x.id}`} busy={busy}
                                          name={x.name} description={x.description} onCancel={() => setEditing(null)}
                                          onSave={async (name, description) => {
                                            const ok = await act(() => api.request("PATCH", `${base(project)}/${seg(x.id)}`, { name, description }));
                                            if (ok) setEditing(null);
                                            return ok;
                                          }} />
                        : <button type="button" disabled={busy} onClick={() => setEditing(x.id)}>Edit<span class="visually-hidden"> {x.name}</span></button>)}
                      {can(role, "experiment.archive") && (
                        <button type="button" disabled={busy}
                                onClick={() => void act(() => api.request("POST", `${base(project)}/${seg(x.id)}/${x.archived ? "restore" : "archive"}`))}>
                          {x.archived ? "Restore" : "Archive"}<span class="visually-hidden"> {x.name}</span>
                        </button>
                      )}
                    </div></td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <p class="help">The registry does not count an experiment's runs; "Runs of …" opens the runs table filtered to it.</p>
    </section>
  );
}

interface FormProps {
  title: string; submit: string; idPrefix: string; busy: boolean; name?: string; description?: string;
  onSave: (name: string, description: string) => Promise<boolean>; onCancel?: () => void;
}

function ExperimentForm({ title, submit, idPrefix, busy, name = "", description = "", onSave, onCancel }: FormProps) {
  const [n, setN] = useState(name);
  const [d, setD] = useState(description);
  const [problem, setProblem] = useState<string | null>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    const p = nameProblem(n);
    setProblem(p);
    if (p) return;
    if (await onSave(n.trim(), d) && !onCancel) { setN(""); setD(""); }
  };
  return (
    <form class="card exp-form" aria-label={title} onSubmit={(e) => void save(e)}>
      <h2 class="exp-form-title">{title}</h2>
      <label for={`${idPrefix}-name`}>Name</label>
      <input id={`${idPrefix}-name`} type="text" value={n} onInput={(e) => setN((e.target as HTMLInputElement).value)} />
      <label for={`${idPrefix}-desc`}>Description</label>
      <input id={`${idPrefix}-desc`} type="text" value={d} onInput={(e) => setD((e.target as HTMLInputElement).value)} />
      {problem && <p class="error" role="alert">{problem}</p>}
      <div class="toolbar">
        <button type="submit" class="primary" disabled={busy}>{submit}</button>
        {onCancel && <button type="button" onClick={onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

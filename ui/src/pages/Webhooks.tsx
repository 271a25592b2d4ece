// A project's webhooks (admins only, as in the API): the list with each one's pending deliveries,
// create (URL + event types; the signing secret shown once), delete after a confirm step, and per
// webhook its dead letters (events that failed every attempt) with Replay, which queues them again,
// and under each webhook's row its recent delivery attempts (outcome, time, attempt, result) with a
// Refresh and "Older" (the gateway keeps the newest 200 attempts per webhook).
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { useAction } from "../lib/action";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { seg } from "../lib/api";
import { clickRemove, IDLE, type Confirm } from "../lib/members";
import { can, roleIn } from "../lib/roles";
import type { Session } from "../lib/types";
import { attemptResult, deliveriesUrl, outcomeClass, parseTypes, type DeadLetter, type DeliveryAttempt, type Webhook } from "../lib/webhooks";
import "./members.css";
import "./webhooks.css";

export function Webhooks({ project, session, navigate }: { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }) {
  const p = project ?? "";
  const role = roleIn(session, p);
  const admin = can(role, "webhooks.manage");
  return (
    <section>
      <Crumbs project={p} here="Webhooks" navigate={navigate} />
      <ProjectNav project={p} current="webhooks" navigate={navigate} role={role} />
      <h1>Webhooks of {p} <span class="role">your role: {role ?? "none"}</span></h1>
      {admin ? <WebhookAdmin project={p} /> : <p class="help">Webhooks are managed by the project's admins.</p>}
    </section>
  );
}

function WebhookAdmin({ project }: { project: string }) {
  const url = `/api/v1/projects/${seg(project)}/webhooks`;
  const [hooks, setHooks] = useState<Webhook[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [target, setTarget] = useState("");
  const [types, setTypes] = useState("run.*");
  const [secret, setSecret] = useState<{ id: string; secret: string } | null>(null);
  const [confirm, setConfirm] = useState<Confirm>(IDLE);
  const [open, setOpen] = useState<string | null>(null);
  const [busy, run] = useAction();

  const load = () => api.get<{ webhooks: Webhook[] }>(url).then((b) => setHooks(b.webhooks), (e: Error) => setError(e.message));
  useEffect(() => { void load(); }, [url]);

  const create = async (e: Event) => {
    e.preventDefault();
    const list = parseTypes(types);
    if (!list.length) { setFormError("event types: at least one, e.g. run.* or model_version.alias_set"); return; }
    await run(async () => {
      const made = await api.post<Webhook & { secret: string }>(url, { url: target.trim(), types: list });
      setSecret({ id: made.id, secret: made.secret });
      setTarget("");
      await load();
    }, setFormError);
  };

  const remove = async (id: string) => {
    const next = clickRemove(confirm, id);
    setConfirm(next.state);
    if (!next.go) return;
    try {
      await api.request("DELETE", `${url}/${seg(id)}`);
      setError(null);
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <>
      {secret && (
        <div class="token-secret" role="alert">
          <p><strong>Signing secret of webhook {secret.id}.</strong> Keep it to verify <code>Cairn-Signature</code>: it will not be shown again.</p>
          <p><code>{secret.secret}</code></p>
          <button type="button" onClick={() => setSecret(null)}>Dismiss</button>
        </div>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      {!hooks && !error && <p role="status">Loading…</p>}
      {hooks && (
        <table class="list webhook-table">
          <caption class="help">{hooks.length} webhooks</caption>
          <thead><tr><th scope="col">URL</th><th scope="col">Event types</th><th scope="col">Pending deliveries</th>
            <th scope="col">Created</th><th scope="col">Dead letters</th><th scope="col">Delete</th></tr></thead>
          <tbody>
            {hooks.flatMap((h) => [
              <tr key={h.id} id={`webhook-${h.id}`}>
                <th scope="row">{h.url}</th>
                <td>{h.types.join(", ")}</td>
                <td>{h.pending}</td>
                <td>{h.created_at}</td>
                <td><button type="button" aria-expanded={open === h.id} aria-controls={`letters-${h.id}`}
                            onClick={() => setOpen(open === h.id ? null : h.id)}>{open === h.id ? "Hide" : "Show"} dead letters</button></td>
                <td><button type="button" class={confirm.armed === h.id ? "member-danger" : undefined}
                            aria-label={confirm.armed === h.id ? `Confirm deleting webhook ${h.url}` : `Delete webhook ${h.url}`}
                            onClick={() => void remove(h.id)}>
                  {confirm.armed === h.id ? "Confirm delete" : "Delete"}</button></td>
              </tr>,
              <tr key={`${h.id}-deliveries`} class="webhook-deliveries-row">
                <td colSpan={6}><Deliveries id={h.id} url={h.url} base={`${url}/${seg(h.id)}`} /></td>
              </tr>,
            ])}
          </tbody>
        </table>
      )}
      {open && <DeadLetters id={open} base={`${url}/${seg(open)}`} onReplayed={load} />}
      <form class="toolbar member-add" onSubmit={create}>
        <h2>Add a webhook</h2>
        <label>URL <input name="url" type="url" value={target} required placeholder="https://example.com/cairn"
                          onInput={(e) => setTarget((e.target as HTMLInputElement).value)} /></label>
        <label>Event types <input name="types" value={types} required aria-describedby="webhook-types-help"
                                  onInput={(e) => setTypes((e.target as HTMLInputElement).value)} /></label>
        <button type="submit" class="primary" disabled={busy || !target.trim()}>Add webhook</button>
        <p class="help" id="webhook-types-help">Comma-separated globs, e.g. <code>run.*, model_version.*</code>. Deliveries are signed and retried; events that fail every attempt become dead letters.</p>
        {formError && <p class="error" role="alert">{formError}</p>}
      </form>
    </>
  );
}

function DeadLetters({ id, base, onReplayed }: { id: string; base: string; onReplayed: () => void }) {
  const [letters, setLetters] = useState<DeadLetter[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const load = () => api.get<{ dead_letters: DeadLetter[] }>(`${base}/dead-letters`).then((b) => setLetters(b.dead_letters), (e: Error) => setError(e.message));
  useEffect(() => { setLetters(null); void load(); }, [base]);

  const replay = async () => {
    try {
      const r = await api.post<{ replaying: number[] }>(`${base}/replay`, {});
      setNote(`Replaying ${r.replaying.length} events.`);
      setError(null);
      await load();
      onReplayed();
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <section id={`letters-${id}`} class="webhook-letters" aria-label={`Dead letters of webhook ${id}`}>
      <h2>Dead letters of {id}</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {note && <p role="status">{note}</p>}
      {!letters && !error && <p role="status">Loading…</p>}
      {letters && letters.length === 0 && <p>No dead letters.</p>}
      {letters && letters.length > 0 && (
        <>
          <table class="list webhook-dead">
            <thead><tr><th scope="col">Event (sequence)</th><th scope="col">Error</th><th scope="col">Attempts</th><th scope="col">Time</th></tr></thead>
            <tbody>{letters.map((d) => (
              <tr key={d.sequence}><th scope="row">{d.sequence}</th><td>{d.error}</td><td>{d.attempts}</td><td>{d.time}</td></tr>
            ))}</tbody>
          </table>
          <button type="button" onClick={replay}>Replay {letters.length} dead letters</button>{" "}
        </>
      )}
      <button type="button" onClick={() => void load()}>Refresh</button>
    </section>
  );
}

function Deliveries({ id, url, base }: { id: string; url: string; base: string }) {
  const [rows, setRows] = useState<DeliveryAttempt[] | null>(null);
  const [older, setOlder] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = async (before?: number) => {
    try {
      const b = await api.get<{ deliveries: DeliveryAttempt[]; next_before: number | null }>(deliveriesUrl(base, 5, before));
      setRows((now) => (before && now ? [...now, ...b.deliveries] : b.deliveries));
      setOlder(b.next_before);
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  useEffect(() => { void load(); }, [base]);

  return (
    <section class="webhook-deliveries" id={`deliveries-${id}`} aria-label={`Recent deliveries of webhook ${url}`}>
      <h3>Recent deliveries</h3>
      {error && <p class="error" role="alert">{error}</p>}
      {!rows && !error && <p role="status">Loading…</p>}
      {rows && rows.length === 0 && <p>No delivery attempts yet.</p>}
      {rows && rows.length > 0 && (
        <table class="list webhook-attempts">
          <thead><tr><th scope="col">Outcome</th><th scope="col">Time</th><th scope="col">Event (sequence)</th>
            <th scope="col">Attempt</th><th scope="col">Result</th><th scope="col">Took</th></tr></thead>
          <tbody>{rows.map((d) => (
            <tr key={d.id}>
              <th scope="row"><span class={outcomeClass(d.outcome)}>{d.outcome.replace("_", " ")}</span></th>
              <td>{d.time}</td>
              <td>{d.event_type} (#{d.sequence})</td>
              <td>{d.attempt}</td>
              <td>{attemptResult(d)}</td>
              <td>{Math.round(d.duration_ms)} ms</td>
            </tr>
          ))}</tbody>
        </table>
      )}
      <button type="button" aria-label={`Refresh deliveries of webhook ${url}`} onClick={() => void load()}>Refresh</button>{" "}
      {older !== null && <button type="button" aria-label={`Older deliveries of webhook ${url}`} onClick={() => void load(older)}>Older</button>}
    </section>
  );
}

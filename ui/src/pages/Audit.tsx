// The audit log: who did what and when, read from the event log by `GET /api/v1/audit` (site
// admins: every project; project admins: their projects). Filters (project, actor, event type
// globs, since) live in the page's URL query, so a filtered view reloads and can be shared. The
// route pages backwards from the newest event (`order=desc`); "Older" fetches the next page back
// and appends it below.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { auditPageQuery, auditPageSize, dataSummary, auditUrl, localToIso, newestFirst, parseAuditQuery, type AuditEvent, type AuditFilter } from "../lib/audit";
import type { Session } from "../lib/types";
import "./members.css";

export function Audit({ session }: { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }) {
  const adminOf = Object.entries(session.projects).filter(([, r]) => r === "admin").map(([p]) => p).sort();
  const initial = parseAuditQuery(location.search);
  const [size] = useState(() => auditPageSize(location.search));
  if (!session.site_admin && !initial.project && adminOf.length) initial.project = adminOf[0]!;
  const [filter, setFilter] = useState<AuditFilter>(initial);
  const [draft, setDraft] = useState<AuditFilter>(initial);
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [cursor, setCursor] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const fetchPage = async (f: AuditFilter, from: number, loaded: AuditEvent[]) => {
    setBusy(true);
    try {
      const b = await api.get<{ events: AuditEvent[]; next_cursor: number | null }>(auditUrl(f, from, size));
      setEvents(newestFirst(loaded, b.events));
      setCursor(b.next_cursor);
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    setEvents(null);
    void fetchPage(filter, 0, []);
  }, [auditUrl(filter)]);

  const apply = (e: Event) => {
    e.preventDefault();
    const next = { ...draft, since: draft.since.includes("T") && !draft.since.endsWith("Z") ? localToIso(draft.since) || draft.since : draft.since };
    const query = auditPageQuery(next);
    const sized = size === 100 ? query : `${query}${query ? "&" : "?"}limit=${size}`;
    history.replaceState(null, "", `/audit${sized}`);
    setFilter(next);
  };
  const field = (k: keyof AuditFilter) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });

  return (
    <section>
      <h1>Audit log</h1>
      <p class="help">Every change is an event naming its actor; this is the event log itself, filtered.</p>
      <form class="toolbar audit-filters" onSubmit={apply} aria-label="Audit filters">
        {session.site_admin
          ? <label>Project <input name="project" value={draft.project} placeholder="all" onInput={field("project")} /></label>
          : <label>Project <select name="project" value={draft.project} onChange={field("project")}>
              {adminOf.map((p) => <option key={p} value={p}>{p}</option>)}
            </select></label>}
        <label>Actor <input name="actor" value={draft.actor} placeholder="user or user:token" onInput={field("actor")} /></label>
        <label>Event types <input name="type" value={draft.type} placeholder="member.*,token.*" onInput={field("type")} /></label>
        <label>Since <input name="since" value={draft.since} placeholder="2026-12-01T08:00:00Z" onInput={field("since")} /></label>
        <button type="submit" class="primary" disabled={busy}>Filter</button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count">{events ? `${events.length} events, newest first${cursor !== null ? " (older available)" : ""}` : "Loading…"}</p>
      {events && events.length > 0 && (
        <table class="list audit-table">
          <thead><tr><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Project</th>
            <th scope="col">Target</th><th scope="col">Details</th><th scope="col">Result</th><th scope="col">Request id</th></tr></thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.sequence}>
                <td>{e.time}</td>
                <td>{e.actor}</td>
                <th scope="row">{e.type}</th>
                <td>{e.project}</td>
                <td>{e.aggregate}/{e.aggregate_id}</td>
                <td>{dataSummary(e.data)}</td>
                <td>recorded (#{e.sequence})</td>
                <td><code>{e.correlation_id}</code></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {cursor !== null && events && (
        <button type="button" disabled={busy} onClick={() => void fetchPage(filter, cursor, events)}>Older</button>
      )}
    </section>
  );
}

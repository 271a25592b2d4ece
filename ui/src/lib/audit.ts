// The audit page's filters and their two spellings: the page's own URL query (so a filtered view
// can be reloaded or shared) and the gateway's `GET /api/v1/audit` query (docs/access.md#audit).
// The page asks for `order=desc`: the newest events first, and each "Older" page is the next one
// back (`before` = the previous page's `next_cursor`).

export interface AuditFilter {
  project: string;
  actor: string;
  /** event type globs, comma-separated (`member.*,token.*`) */
  type: string;
  /** ISO 8601 time: events at or after it */
  since: string;
}

export const EMPTY_FILTER: AuditFilter = { project: "", actor: "", type: "", since: "" };

const KEYS = ["project", "actor", "type", "since"] as const;

/** The filter a page URL's query carries (unknown keys ignored, values trimmed). */
export function parseAuditQuery(search: string): AuditFilter {
  const q = new URLSearchParams(search);
  const out = { ...EMPTY_FILTER };
  for (const k of KEYS) out[k] = (q.get(k) ?? "").trim();
  return out;
}

/** The page size a page URL asks for (`?limit=`, 1-1000; default 100): a short page to read a
 * busy log a few events at a time. */
export function auditPageSize(search: string): number {
  const n = Number(new URLSearchParams(search).get("limit"));
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 100;
}

/** The query string (with `?`, or "" when empty) for the page URL: only the filters set. */
export function auditPageQuery(f: AuditFilter): string {
  const q = new URLSearchParams();
  for (const k of KEYS) if (f[k].trim()) q.set(k, f[k].trim());
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** A `datetime-local` input's value (local time, no zone) as the UTC ISO time the route takes. */
export function localToIso(value: string): string {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** The API URL for one page of the audit log, newest first: the filters, `before` (0: from the
 * newest event; else the previous page's `next_cursor`), a limit. */
export function auditUrl(f: AuditFilter, before = 0, limit = 100): string {
  const q = new URLSearchParams();
  for (const k of KEYS) if (f[k].trim()) q.set(k, f[k].trim());
  q.set("order", "desc");
  if (before > 0) q.set("before", String(before));
  q.set("limit", String(limit));
  return `/api/v1/audit?${q.toString()}`;
}

export interface AuditEvent {
  id: string;
  type: string;
  project: string;
  aggregate: string;
  aggregate_id: string;
  sequence: number;
  time: string;
  actor: string;
  correlation_id: string;
  data: Record<string, unknown>;
}

/** The loaded events newest first, each once: an older page goes below, and a page fetched again
 * after new events (a refresh) merges without repeats. */
export function newestFirst(loaded: AuditEvent[], page: AuditEvent[]): AuditEvent[] {
  const seen = new Set(loaded.map((e) => e.sequence));
  const merged = [...loaded, ...page.filter((e) => !seen.has(e.sequence))];
  return merged.sort((a, b) => b.sequence - a.sequence);
}

/** A short `key=value` line of an event's scalar data fields (the first `max`), for the table. */
export function dataSummary(data: Record<string, unknown>, max = 3): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(data ?? {})) {
    if (parts.length >= max) break;
    if (v === null || ["string", "number", "boolean"].includes(typeof v)) parts.push(`${k}=${String(v).slice(0, 40)}`);
  }
  return parts.join(" ");
}

// The webhooks page's form: event types typed as a comma- or space-separated list.

/** `"run.*, model_version.*"` -> `["run.*", "model_version.*"]`, each once, in order. */
export function parseTypes(text: string): string[] {
  const out: string[] = [];
  for (const t of text.split(/[\s,]+/)) if (t && !out.includes(t)) out.push(t);
  return out;
}

export interface Webhook {
  id: string;
  project: string;
  url: string;
  types: string[];
  created_at: string;
  pending: number;
}

export interface DeadLetter {
  sequence: number;
  error: string;
  attempts: number;
  time: string;
}

/** One recorded try of one delivery (`GET .../webhooks/<id>/deliveries`, newest first). */
export interface DeliveryAttempt {
  id: number;
  sequence: number;
  event_type: string;
  attempt: number;
  time: string;
  status: number | null;
  error: string;
  duration_ms: number;
  outcome: "delivered" | "retrying" | "dead_lettered";
  next_retry_at: string | null;
}

/** What an attempt's result column says: the receiver's status, else the error; and a retry's due time. */
export function attemptResult(d: DeliveryAttempt): string {
  const what = d.error || (d.status !== null ? `HTTP ${d.status}` : "no answer");
  if (d.outcome === "delivered") return `${what} delivered`;
  if (d.outcome === "dead_lettered") return `${what}, dead-lettered`;
  return d.next_retry_at ? `${what}, retry at ${d.next_retry_at}` : what;
}

/** The badge class of an outcome (colours in pages/webhooks.css, AA on white). */
export function outcomeClass(outcome: DeliveryAttempt["outcome"]): string {
  return outcome === "delivered" ? "badge webhook-ok" : outcome === "retrying" ? "badge webhook-warn" : "badge webhook-bad";
}

/** The deliveries URL of a webhook: the newest `limit`, or those older than row `before`. */
export function deliveriesUrl(base: string, limit = 5, before?: number): string {
  return `${base}/deliveries?limit=${limit}${before ? `&before=${before}` : ""}`;
}

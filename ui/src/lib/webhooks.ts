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

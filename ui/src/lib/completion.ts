// Completion for the runs filter box (the registry's search syntax, docs/registry.md "Search"):
// the word at the caret is completed to an attribute, `params.`/`metrics.`/`tags.`, or a key of
// what the loaded runs have. Keys that are not plain words are backquoted, as the syntax wants.
import type { Run, RunMetrics } from "./types";

export const ATTRIBUTES = [
  "status", "name", "experiment_id", "run_id", "created_at", "started_at", "ended_at", "updated_at", "created_by",
];
export const PREFIXES = ["params.", "metrics.", "tags.", "attributes."] as const;

export interface Vocabulary {
  params: string[];
  metrics: string[];
  tags: string[];
}

export interface Completion {
  /** The replaced span of the text: [start, end). */
  start: number;
  end: number;
  items: string[];
}

/** The param, metric and tag names the loaded runs have, sorted. */
export function vocabulary(runs: Run[], metrics: RunMetrics = {}): Vocabulary {
  const params = new Set<string>();
  const tags = new Set<string>();
  const mkeys = new Set<string>();
  for (const r of runs) {
    for (const k in r.params) params.add(k);
    for (const k in r.tags) tags.add(k);
  }
  for (const id in metrics) for (const k in metrics[id]) mkeys.add(k);
  const sorted = (s: Set<string>) => [...s].sort();
  return { params: sorted(params), metrics: sorted(mkeys), tags: sorted(tags) };
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A key as the filter syntax writes it: bare when it is a plain word, else in backquotes. */
export function quoteKey(key: string): string {
  return PLAIN_KEY.test(key) ? key : "`" + key + "`";
}

/** True when the caret is inside a '...' string literal (no completion there). */
function inString(text: string, caret: number): boolean {
  let open = false;
  for (let i = 0; i < caret; i++) if (text[i] === "'") open = !open;
  return open;
}

/** The word being typed: from after the last separator (space outside backquotes, parens, commas,
 * operators) to the caret. */
function wordStart(text: string, caret: number): number {
  let inTick = false;
  for (let i = 0; i < caret; i++) if (text[i] === "`") inTick = !inTick;
  let i = caret;
  while (i > 0) {
    const ch = text[i - 1]!;
    if (ch === "`") inTick = !inTick;
    else if (!inTick && /[\s(),=<>!']/.test(ch)) break;
    i--;
  }
  return i;
}

export function complete(text: string, caret: number, vocab: Vocabulary, limit = 20): Completion {
  const none = { start: caret, end: caret, items: [] };
  if (inString(text, caret)) return none;
  const start = wordStart(text, caret);
  const word = text.slice(start, caret);
  let items: string[];
  const dot = word.indexOf(".");
  if (dot >= 0) {
    const prefix = word.slice(0, dot);
    const partial = word.slice(dot + 1).replace(/^`/, "").toLowerCase();
    const keys = prefix === "params" ? vocab.params
      : prefix === "metrics" ? vocab.metrics
      : prefix === "tags" ? vocab.tags
      : prefix === "attributes" ? ATTRIBUTES : [];
    items = keys.filter((k) => k.toLowerCase().startsWith(partial)).map((k) => `${prefix}.${quoteKey(k)}`);
  } else {
    if (!word) return none;
    const lower = word.toLowerCase();
    items = [...PREFIXES, ...ATTRIBUTES].filter((w) => w.startsWith(lower) && w !== lower);
  }
  return { start, end: caret, items: items.slice(0, limit) };
}

/** The text and caret after choosing `item` for completion `c` (a prefix keeps the caret on it). */
export function applyCompletion(text: string, c: Completion, item: string): { text: string; caret: number } {
  const suffix = item.endsWith(".") ? "" : " ";
  const after = text.slice(c.end);
  const glue = after.startsWith(" ") ? "" : suffix;
  const next = text.slice(0, c.start) + item + glue + after;
  return { text: next, caret: c.start + item.length + glue.length };
}

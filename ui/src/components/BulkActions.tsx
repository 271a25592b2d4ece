// Bulk actions on the runs selected in the runs table: "Tag…" (key=value on each, editors) and
// "Archive" (with a confirm step) or "Restore" (admins). One request per run, a few at a time,
// with progress; each run's error is listed, and the others still go through.
import { useState } from "preact/hooks";
import { api } from "../client";
import { seg } from "../lib/api";
import { bulkSummary, parseTag, runBulk, type BulkOutcome } from "../lib/bulk";
import { can } from "../lib/roles";
import type { Role } from "../lib/types";
import "./bulk.css";

export type BulkDone =
  | { kind: "tag"; key: string; value: string; outcomes: BulkOutcome[] }
  | { kind: "archive" | "restore"; outcomes: BulkOutcome[] };

interface Props {
  project: string;
  role: Role | null;
  /** The selected runs (ids), and their names for the error list. */
  ids: string[];
  names: Record<string, string>;
  /** Archived runs are shown: Restore is offered next to Archive. */
  showArchived: boolean;
  onDone: (d: BulkDone) => void;
}

export function BulkActions({ project, role, ids, names, showArchived, onDone }: Props) {
  const [mode, setMode] = useState<"idle" | "tag" | "confirm-archive">("idle");
  const [tagText, setTagText] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [progress, setProgress] = useState<string | null>(null);
  const [result, setResult] = useState<{ summary: string; failed: BulkOutcome[] } | null>(null);
  const [busy, setBusy] = useState(false);
  if (!can(role, "run.tag") && !can(role, "run.archive")) return null;
  const runs = `${ids.length} run${ids.length === 1 ? "" : "s"}`;
  const base = `/api/v1/registry/projects/${seg(project)}/runs`;

  const go = async (verb: string, act: (id: string) => Promise<unknown>): Promise<BulkOutcome[]> => {
    setBusy(true);
    setResult(null);
    setProgress(`${verb}: 0 of ${ids.length}`);
    const outcomes = await runBulk([...ids], act, (done, total) => setProgress(`${verb}: ${done} of ${total}`));
    setProgress(null);
    setBusy(false);
    setMode("idle");
    setResult({ summary: bulkSummary(verb, outcomes), failed: outcomes.filter((o) => !o.ok) });
    return outcomes;
  };

  const tag = async (e: Event) => {
    e.preventDefault();
    const t = parseTag(tagText);
    if ("error" in t) { setProblem(t.error); return; }
    setProblem(null);
    const outcomes = await go("Tagged", (id) =>
      api.request("PUT", `${base}/${seg(id)}/tags/${seg(t.key)}`, { value: t.value }));
    onDone({ kind: "tag", key: t.key, value: t.value, outcomes });
    setTagText("");
  };
  const archive = async (restore: boolean) => {
    const outcomes = await go(restore ? "Restored" : "Archived", (id) =>
      api.request("POST", `${base}/${seg(id)}/${restore ? "restore" : "archive"}`));
    onDone({ kind: restore ? "restore" : "archive", outcomes });
  };

  return (
    <div class="bulk" role="group" aria-label="Bulk actions on the selected runs">
      {ids.length > 0 && mode === "idle" && (
        <>
          {can(role, "run.tag") && <button type="button" disabled={busy} onClick={() => setMode("tag")}>Tag {runs}…</button>}
          {can(role, "run.archive") && <button type="button" disabled={busy} onClick={() => setMode("confirm-archive")}>Archive {runs}…</button>}
          {can(role, "run.archive") && showArchived && (
            <button type="button" disabled={busy} onClick={() => void archive(true)}>Restore {runs}</button>
          )}
        </>
      )}
      {mode === "tag" && (
        <form class="bulk-form" onSubmit={(e) => void tag(e)} aria-label={`Tag ${runs}`}>
          <label for="bulk-tag">Tag (key=value)</label>
          <input id="bulk-tag" type="text" value={tagText} placeholder="stage=candidate" aria-describedby="bulk-tag-help"
                 onInput={(e) => setTagText((e.target as HTMLInputElement).value)} />
          <span id="bulk-tag-help" class="visually-hidden">Sets this tag on each of the {runs} selected</span>
          <button type="submit" class="primary" disabled={busy}>Apply to {runs}</button>
          <button type="button" onClick={() => { setMode("idle"); setProblem(null); }}>Cancel</button>
          {problem && <p class="error" role="alert">{problem}</p>}
        </form>
      )}
      {mode === "confirm-archive" && (
        <div class="bulk-form" role="alertdialog" aria-label="Confirm archiving" aria-describedby="bulk-confirm-text">
          <span id="bulk-confirm-text">Archive {runs}? They leave the table (restore them with "Show archived runs").</span>
          <button type="button" class="primary" disabled={busy} onClick={() => void archive(false)}>Archive {runs}</button>
          <button type="button" onClick={() => setMode("idle")}>Cancel</button>
        </div>
      )}
      {progress && <span class="help" role="status">{progress}</span>}
      {result && (
        <div class="bulk-result" role="status">
          {result.summary}
          {result.failed.length > 0 && (
            <ul class="error">
              {result.failed.map((o) => <li key={o.id}>{names[o.id] || o.id}: {o.error}</li>)}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}

// A run's notes: shown as plain text (line breaks kept, never parsed as HTML), editable by
// editors. They live in the MLflow tag `mlflow.note.content`, so MLflow clients show the same notes.
import { useState } from "preact/hooks";
import { api } from "../client";
import { seg } from "../lib/api";
import { NOTE_MAX, NOTE_TAG } from "../lib/runpage";
import type { Run } from "../lib/types";

interface Props { project: string; run: Run; canEdit: boolean; onSaved: (run: Run) => void }

export function RunNotes({ project, run, canEdit, onSaved }: Props) {
  const note = run.tags[NOTE_TAG] ?? "";
  const [draft, setDraft] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function save(e: Event) {
    e.preventDefault();
    if (draft === null) return;
    setBusy(true);
    try {
      const url = `/api/v1/registry/projects/${seg(project)}/runs/${seg(run.id)}/tags/${seg(NOTE_TAG)}`;
      onSaved(await api.request<Run>("PUT", url, { value: draft }));
      setDraft(null);
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="run-notes" aria-labelledby="run-notes-h">
      <h2 id="run-notes-h">Notes</h2>
      {draft === null ? (
        <>
          {note ? <p class="run-note-text">{note}</p> : <p class="help">No notes.</p>}
          {canEdit && <button type="button" onClick={() => setDraft(note)}>Edit notes</button>}
        </>
      ) : (
        <form onSubmit={save}>
          <label for="run-note-edit">Notes (plain text; MLflow clients show them too)</label>
          <textarea id="run-note-edit" rows={6} maxLength={NOTE_MAX} value={draft}
                    onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)} />
          <div class="toolbar">
            <button type="submit" disabled={busy}>Save notes</button>
            <button type="button" disabled={busy} onClick={() => { setDraft(null); setError(null); }}>Cancel</button>
            <span class="help">{draft.length.toLocaleString("en")} / {NOTE_MAX.toLocaleString("en")} characters</span>
          </div>
        </form>
      )}
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}

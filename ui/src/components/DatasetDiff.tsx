// The diff between two versions of a dataset (GET .../datasets/<name>/diff?from=&to=): added,
// removed and changed files with their sizes, and a one-line summary with the totals.
import { useEffect, useState } from "preact/hooks";
import { api } from "../client";
import { diffSummary, formatBytes, formatChange, type DatasetDiff } from "../lib/datasets";

export function DatasetDiffView({ url, versions }: { url: string; versions: number[] }) {
  const last = versions[versions.length - 1]!;
  const [from, setFrom] = useState(versions[versions.length - 2]!);
  const [to, setTo] = useState(last);
  const [diff, setDiff] = useState<DatasetDiff | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (from === to) { setDiff(null); setError("pick two different versions"); return; }
    let stale = false;
    api.get<DatasetDiff>(`${url}/diff?${new URLSearchParams({ from: String(from), to: String(to) })}`).then(
      (d) => { if (!stale) { setDiff(d); setError(null); } },
      (e: Error) => { if (!stale) setError(e.message); });
    return () => { stale = true; };
  }, [url, from, to]);
  const pick = (id: string, label: string, value: number, set: (v: number) => void) => (
    <div>
      <label for={id}>{label}</label>
      <select id={id} value={String(value)} onChange={(e) => set(Number((e.target as HTMLSelectElement).value))}>
        {versions.map((v) => <option key={v} value={String(v)}>v{v}</option>)}
      </select>
    </div>
  );
  return (
    <section class="dataset-diff" aria-labelledby="dataset-diff-title">
      <h2 id="dataset-diff-title">Compare versions</h2>
      <form onSubmit={(e) => e.preventDefault()} aria-label="Versions to compare">
        {pick("diff-from", "From", from, setFrom)}
        {pick("diff-to", "To", to, setTo)}
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {diff && (
        <>
          <p role="status" class="dataset-summary">v{diff.from} → v{diff.to}: {diffSummary(diff)}</p>
          {diff.added.length + diff.removed.length + diff.changed.length === 0 ? <p>The two versions hold the same files.</p> : (
            <table class="list" aria-label={`Files that differ between v${diff.from} and v${diff.to}`}>
              <thead><tr><th scope="col">Path</th><th scope="col">Change</th><th scope="col">Size before</th>
                <th scope="col">Size after</th><th scope="col">Difference</th></tr></thead>
              <tbody>
                {diff.added.map((f) => (
                  <tr key={`a-${f.path}`}><th scope="row"><code>{f.path}</code></th><td class="dataset-kind">added</td>
                    <td></td><td>{formatBytes(f.size)}</td><td>{formatChange(f.size)}</td></tr>
                ))}
                {diff.removed.map((f) => (
                  <tr key={`r-${f.path}`}><th scope="row"><code>{f.path}</code></th><td class="dataset-kind">removed</td>
                    <td>{formatBytes(f.size)}</td><td></td><td>{formatChange(-f.size)}</td></tr>
                ))}
                {diff.changed.map((f) => (
                  <tr key={`c-${f.path}`}><th scope="row"><code>{f.path}</code></th><td class="dataset-kind">changed</td>
                    <td>{formatBytes(f.size_before)}</td><td>{formatBytes(f.size_after)}</td><td>{formatChange(f.size_change)}</td></tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}

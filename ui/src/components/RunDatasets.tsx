// The dataset versions a run used (the artifacts service's record of `run.use_dataset`), each
// linked to its dataset's page. What a run produced shows in the lineage graph beside it.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { seg } from "../lib/api";
import { routePath } from "../lib/router";

interface DatasetUse { dataset: string; version: number | string; manifest_digest: string; created_at?: string }

export function RunDatasets({ project, runId, navigate }: { project: string; runId: string; navigate: Navigate }) {
  const [uses, setUses] = useState<DatasetUse[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.get<{ datasets: DatasetUse[] }>(`/api/v1/artifacts/projects/${seg(project)}/runs/${seg(runId)}/datasets`)
      .then((b) => setUses(b.datasets), (e: Error) => setError(e.message));
  }, [project, runId]);

  return (
    <section aria-labelledby="run-datasets-h">
      <h2 id="run-datasets-h">Datasets used</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {uses === null && !error && <p role="status">Loading…</p>}
      {uses && uses.length === 0 && <p class="help">No dataset recorded (<code>run.use_dataset("name@vN")</code> records one).</p>}
      {uses && uses.length > 0 && (
        <table class="list">
          <thead><tr><th scope="col">Dataset</th><th scope="col">Version</th><th scope="col">Role</th><th scope="col">Digest</th></tr></thead>
          <tbody>{uses.map((u) => {
            const to = { page: "dataset" as const, project, name: u.dataset };
            return (
              <tr key={`${u.dataset}@${u.version}`}>
                <th scope="row"><a href={routePath(to)} onClick={(e) => { e.preventDefault(); navigate(to); }}>{u.dataset}</a></th>
                <td>v{u.version}</td>
                <td>input</td>
                <td><code title={u.manifest_digest}>{u.manifest_digest.slice(0, 16)}…</code></td>
              </tr>
            );
          })}</tbody>
        </table>
      )}
    </section>
  );
}

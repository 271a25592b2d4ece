// Compare N runs: an overlaid chart per metric key they all have, a side-by-side table of params,
// metrics and tags with the differing rows marked (and an "only differences" toggle), and for
// exactly two runs the registry's full `runs diff`.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { CompareChart, RUN_COLOURS } from "../components/CompareChart";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { ParallelCoords } from "../components/ParallelCoords";
import { RunDiff } from "../components/RunDiff";
import { seg } from "../lib/api";
import { commonKeys, compareRows, visibleRows, type Cell } from "../lib/compare";
import { archiveFiles, diffSnapshots } from "../lib/compareCode";
import { makeAxis } from "../lib/parcoords";
import { routePath } from "../lib/router";
import type { MetricSummary, Run } from "../lib/types";

type CodeSection = Record<string, unknown> & { a?: Record<string, unknown> | null; b?: Record<string, unknown> | null };

/** Archives past this are left to `cairn runs diff` (the browser holds both, unpacked, in memory). */
const MAX_ARCHIVE_BYTES = 20 * 1024 * 1024;

/** The diff's code section with `unified_diff` made here from the two archives (as `cairn runs diff`
 * does), or `unified_diff_error` saying why not; null when there is nothing to do. */
async function withCodeDiff(code: CodeSection | undefined): Promise<CodeSection | null> {
  if (!code || typeof code.unified_diff === "string") return null;
  const digests = [code.a?.archive_digest, code.b?.archive_digest];
  if (!digests.every((d) => typeof d === "string")) return { ...code, unified_diff_error: "A run has no code archive: no file-by-file diff." };
  if (code.same_archive) return { ...code, unified_diff: "" };
  const sizes = [code.a?.archive_bytes, code.b?.archive_bytes].map((n) => (typeof n === "number" ? n : 0));
  if (sizes.some((n) => n > MAX_ARCHIVE_BYTES)) {
    return { ...code, unified_diff_error: "The code archives are too large to diff in the browser: `cairn runs diff A B`." };
  }
  try {
    const [fa, fb] = await Promise.all(digests.map(async (d) => {
      const resp = await fetch(`/api/v1/artifacts/blobs/${seg(String(d))}`, { credentials: "same-origin" });
      if (!resp.ok) throw new Error(`the code archive ${String(d).slice(0, 12)} could not be read (HTTP ${resp.status})`);
      return archiveFiles(await resp.arrayBuffer());
    }));
    return { ...code, unified_diff: diffSnapshots(fa!, fb!) };
  } catch (e) {
    return { ...code, unified_diff_error: `No file-by-file diff: ${(e as Error).message}.` };
  }
}

/** More runs than this make unreadable charts and tables: the page says so. */
export const MAX_COMPARE = 20;

interface Props { project: string; runIds: string[]; navigate: Navigate }

export function Compare({ project, runIds, navigate }: Props) {
  const ids = runIds.slice(0, MAX_COMPARE);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [metrics, setMetrics] = useState<Record<string, Record<string, Cell>>>({});
  const [keys, setKeys] = useState<string[]>([]);
  const [diff, setDiff] = useState<Record<string, unknown> | null>(null);
  const [onlyDiff, setOnlyDiff] = useState(false);
  const [pcMetric, setPcMetric] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let gone = false;
    const reg = `/api/v1/registry/projects/${seg(project)}/runs`;
    const met = `/api/v1/metrics/projects/${seg(project)}/runs`;
    Promise.all(ids.map(async (id) => {
      const [run, sums] = await Promise.all([api.get<Run>(`${reg}/${seg(id)}`),
        api.get<{ summaries: MetricSummary[] }>(`${met}/${seg(id)}/metrics/summary`)]);
      return { run, sums: sums.summaries };
    })).then((loaded) => {
      if (gone) return;
      setRuns(loaded.map((l) => l.run));
      setMetrics(Object.fromEntries(loaded.map((l) => [l.run.id, Object.fromEntries(l.sums.map((s) => [s.key, s.last]))])));
      setKeys(commonKeys(loaded.map((l) => l.sums.map((s) => s.key))));
    }, (e: Error) => { if (!gone) setError(e.message); });
    if (ids.length === 2) {
      api.get<Record<string, unknown>>(`/api/v1/registry/runs/diff?${new URLSearchParams({ a: ids[0]!, b: ids[1]! })}`)
        .then(async (d) => {
          if (gone) return;
          setDiff(d);
          const code = await withCodeDiff(d.code as CodeSection | undefined);
          if (!gone && code) setDiff({ ...d, code });
        }, (e: Error) => { if (!gone) setError(e.message); });
    }
    return () => { gone = true; };
  }, [project, ids.join(",")]);

  const rows = useMemo(() => compareRows(runs ?? [], metrics), [runs, metrics]);
  const shown = visibleRows(rows, onlyDiff);
  const labels = (runs ?? []).map((r) => r.name || r.id);
  const metric = pcMetric && keys.includes(pcMetric) ? pcMetric : keys[0] ?? null;
  // one axis per param whose values differ, then the chosen metric (last values)
  const pc = useMemo(() => {
    if (!runs || !metric) return null;
    const params = rows.filter((r) => r.section === "params" && r.differs).map((r) => r.key);
    const pcRows = runs.map((r, i) => ({
      id: r.id, label: labels[i]!, href: routePath({ page: "run", project, runId: r.id }),
      values: { ...Object.fromEntries(params.map((k) => [k, r.params[k] ?? null])), [metric]: metrics[r.id]?.[metric] ?? null },
    }));
    const axes = [...params, metric].map((k) => makeAxis(k, pcRows.map((r) => r.values[k])));
    return { axes, rows: pcRows, params };
  }, [runs, metrics, rows, metric]);

  return (
    <section>
      <Crumbs project={project} here="compare" navigate={navigate} />
      <ProjectNav project={project} current={null} navigate={navigate} />
      <h1>Compare {ids.length} runs</h1>
      {ids.length < 2 && <p class="error" role="alert">Pick at least two runs: select them in the runs table, then Compare.</p>}
      {runIds.length > MAX_COMPARE && <p class="help">Showing the first {MAX_COMPARE} of {runIds.length} runs.</p>}
      {error && <p class="error" role="alert">{error}</p>}
      {!runs && !error && <p role="status">Loading…</p>}
      {runs && (
        <>
          <ul class="legend" aria-label="Runs compared">
            {runs.map((r, i) => {
              const to = { page: "run" as const, project, runId: r.id };
              return (
                <li key={r.id}><span class="swatch" aria-hidden="true" style={{ background: RUN_COLOURS[i % RUN_COLOURS.length] }} />
                  <a href={routePath(to)} onClick={(e) => { e.preventDefault(); navigate(to); }}>{labels[i]}</a>
                  <span class="help"> {r.status}</span></li>
              );
            })}
          </ul>

          <h2>Params, metrics and tags</h2>
          <div class="toolbar">
            <input type="checkbox" id="only-diff" checked={onlyDiff} onChange={() => setOnlyDiff((v) => !v)} />
            <label for="only-diff">Only differences</label>
            <span class="help">{rows.filter((r) => r.differs).length} of {rows.length} rows differ</span>
          </div>
          <div class="scroll-x">
            <table class="list compare">
              <thead><tr><th scope="col">Key</th>{labels.map((l, i) => <th scope="col" key={runs[i]!.id}>{l}</th>)}</tr></thead>
              <tbody>
                {shown.map((r) => (
                  <tr key={`${r.section}.${r.key}`} class={r.differs ? "differs" : ""}>
                    <th scope="row">{r.section}.{r.key}{r.differs && <span class="visually-hidden"> (differs)</span>}</th>
                    {r.values.map((v, i) => <td key={i}>{v === null ? "—" : String(v)}</td>)}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {shown.length === 0 && <p class="help">{onlyDiff ? "No differences." : "Nothing recorded."}</p>}

          <h2>Parallel coordinates</h2>
          {!pc ? <p class="help">No metric key that every run has: nothing to colour the lines by.</p> : (
            <>
              <div class="toolbar">
                <label for="pc-metric">Metric</label>
                <select id="pc-metric" value={metric!} onChange={(e) => setPcMetric((e.target as HTMLSelectElement).value)}>
                  {keys.map((k) => <option key={k} value={k}>{k}</option>)}
                </select>
                <span class="help">{pc.params.length === 0 ? "The runs have the same params: only the metric has an axis."
                  : `${pc.params.length} differing param${pc.params.length === 1 ? "" : "s"}`}</span>
              </div>
              <ParallelCoords axes={pc.axes} rows={pc.rows} metric={metric!}
                caption={`Params that differ vs ${metric}, one line per run`}
                onOpen={(r) => navigate({ page: "run", project, runId: r.id })} />
            </>
          )}

          <h2>Metrics</h2>
          {keys.length === 0 ? <p class="help">No metric key that every run has.</p>
            : keys.map((k) => <CompareChart key={k} project={project} metricKey={k} runIds={runs.map((r) => r.id)} labels={labels} />)}
        </>
      )}
      {diff && <RunDiff diff={diff} />}
    </section>
  );
}

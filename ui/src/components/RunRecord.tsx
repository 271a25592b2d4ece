// The run's reproducibility record (docs/reproducibility.md): environment, packages, GPU, seeds,
// code and command, each group collapsible; a part the run did not record says so.
import { Fragment, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api } from "../client";
import { ApiError, seg } from "../lib/api";
import { diffSummary, filterPackages, humanBytes, splitPackage } from "../lib/runpage";

type Obj = Record<string, unknown>;
interface Record_ { environment?: Obj | null; code?: Obj | null; command?: unknown; seeds?: Obj | null;
  recorded_at?: string; recorded_by?: string }

const NOT = <span class="help">not recorded</span>;

function text(v: unknown): ComponentChildren {
  if (v === null || v === undefined || v === "") return NOT;
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return <code>{JSON.stringify(v)}</code>;
  return String(v);
}

function obj(v: unknown): Obj | null {
  return v && typeof v === "object" && !Array.isArray(v) ? v as Obj : null;
}

function Facts({ rows }: { rows: [string, unknown][] }) {
  return <dl class="facts">{rows.map(([k, v]) => <Fragment key={k}><dt>{k}</dt><dd>{text(v)}</dd></Fragment>)}</dl>;
}

function Group({ title, open, recorded, children }: { title: string; open?: boolean; recorded: boolean; children: ComponentChildren }) {
  return (
    <details class="run-group" open={open}>
      <summary>{title}{recorded ? "" : " — not recorded"}</summary>
      {recorded ? children : <p class="help">not recorded</p>}
    </details>
  );
}

function MapTable({ caption, values }: { caption: string; values: Obj }) {
  const keys = Object.keys(values).sort();
  return (
    <table class="list">
      <caption class="visually-hidden">{caption}</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Value</th></tr></thead>
      <tbody>{keys.map((k) => <tr key={k}><th scope="row">{k}</th><td>{text(values[k])}</td></tr>)}</tbody>
    </table>
  );
}

function Packages({ packages }: { packages: string[] }) {
  const [query, setQuery] = useState("");
  const shown = filterPackages(packages, query);
  return (
    <>
      <div class="toolbar">
        <label for="run-pkg-filter">Filter packages</label>
        <input id="run-pkg-filter" type="search" value={query} placeholder="e.g. numpy"
               onInput={(e) => setQuery((e.target as HTMLInputElement).value)} />
        <span class="help" role="status">{shown.length} of {packages.length}</span>
      </div>
      <div class="run-scroll">
        <table class="list run-packages">
          <caption class="visually-hidden">Installed packages</caption>
          <thead><tr><th scope="col">Package</th><th scope="col">Version</th></tr></thead>
          <tbody>{shown.map((p) => { const [n, v] = splitPackage(p); return <tr key={p}><th scope="row">{n}</th><td>{v}</td></tr>; })}</tbody>
        </table>
      </div>
    </>
  );
}

export function RunRecord({ project, runId }: { project: string; runId: string }) {
  const [rec, setRec] = useState<Record_ | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.get<Record_>(`/api/v1/registry/projects/${seg(project)}/runs/${seg(runId)}/environment`).then(setRec,
      (e: Error) => { if (e instanceof ApiError && e.status === 404) setRec(null); else setError(e.message); });
  }, [project, runId]);

  const env = obj(rec?.environment);
  const py = obj(env?.python);
  const os = obj(env?.os);
  const cpu = obj(env?.cpu);
  const gpu = obj(env?.gpu);
  const devices = Array.isArray(gpu?.devices) ? gpu!.devices as Obj[] : [];
  const packages = Array.isArray(env?.packages) ? env!.packages as string[] : null;
  const frameworks = obj(env?.frameworks);
  const vars = obj(env?.env);
  const code = obj(rec?.code);
  const seeds = obj(rec?.seeds);
  const diff = diffSummary(typeof code?.diff === "string" ? code.diff : "");
  const command = Array.isArray(rec?.command) ? (rec!.command as string[]).join(" ") : rec?.command;

  return (
    <section aria-labelledby="run-record-h" class="run-record">
      <h2 id="run-record-h">Reproducibility record</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {rec === undefined && !error && <p role="status">Loading…</p>}
      {rec === null && <p class="help">not recorded (<code>cairn.start_run</code> records one unless <code>record_environment=False</code>)</p>}
      {rec && (
        <>
          {rec.recorded_at && <p class="help">Recorded {rec.recorded_at}{rec.recorded_by ? ` by ${rec.recorded_by}` : ""}.</p>}
          <Group title="Python and OS" open recorded={!!(py || os)}>
            <Facts rows={[["Python", py ? `${py.version ?? "?"} (${py.implementation ?? "?"})` : null],
              ["Executable", py?.executable], ["OS", os ? [os.system, os.release, os.machine].filter(Boolean).join(" ") : null],
              ["Distribution", os?.distribution], ["Host", env?.hostname]]} />
          </Group>
          <Group title="Hardware" recorded={!!(cpu || env?.memory_bytes)}>
            <Facts rows={[["CPU", cpu?.model], ["CPU count", cpu?.count], ["Memory", humanBytes(env?.memory_bytes as number)]]} />
          </Group>
          <Group title="GPU, driver and CUDA" recorded={!!gpu}>
            <Facts rows={[["GPUs", devices.length === 0 ? "none found" : devices.length], ["Driver", gpu?.driver],
              ["CUDA (driver supports)", gpu?.cuda_driver], ["CUDA (framework built with)", gpu?.cuda], ["cuDNN", gpu?.cudnn],
              ["Found by", gpu?.source]]} />
            {devices.length > 0 && (
              <table class="list">
                <caption class="visually-hidden">GPU devices</caption>
                <thead><tr><th scope="col">#</th><th scope="col">Model</th><th scope="col">Memory</th></tr></thead>
                <tbody>{devices.map((d, i) => <tr key={i}><th scope="row">{i}</th><td>{text(d.name)}</td>
                  <td>{typeof d.memory_mib === "number" ? `${d.memory_mib} MiB` : NOT}</td></tr>)}</tbody>
              </table>
            )}
          </Group>
          <Group title={`Packages${packages ? ` (${packages.length})` : ""}`} recorded={!!packages}>
            {packages && <Packages packages={packages} />}
          </Group>
          <Group title="Frameworks imported" recorded={!!frameworks && Object.keys(frameworks).length > 0}>
            {frameworks && <MapTable caption="Framework versions" values={frameworks} />}
          </Group>
          <Group title="Environment variables (allowlisted)" recorded={!!vars && Object.keys(vars).length > 0}>
            {vars && <MapTable caption="Environment variables" values={vars} />}
          </Group>
          <Group title="Seeds" recorded={!!seeds && Object.keys(seeds).length > 0}>
            {seeds && <MapTable caption="Seeds" values={seeds} />}
          </Group>
          <Group title="Code" recorded={!!code}>
            <Facts rows={[["Commit", code?.commit], ["Branch", code?.branch], ["Remote", code?.remote],
              ["Uncommitted changes", code?.dirty], ["Snapshot digest", code?.archive_digest]]} />
            {code?.dirty === true && (
              <p>Uncommitted diff: {diff.files.length} file{diff.files.length === 1 ? "" : "s"}, +{diff.added} −{diff.removed}
                {diff.files.length > 0 && <> ({diff.files.slice(0, 10).join(", ")}{diff.files.length > 10 ? ", …" : ""})</>}
                {code.diff_truncated === true && " (too large to keep inline; the snapshot has it)"}</p>
            )}
          </Group>
          <Group title="Command" recorded={!!command}>
            <pre class="run-command">{String(command ?? "")}</pre>
          </Group>
        </>
      )}
    </section>
  );
}

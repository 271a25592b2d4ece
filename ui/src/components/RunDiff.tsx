// The full `runs diff` of two runs (GET /api/v1/registry/runs/diff), as the registry answers it:
// params, code, environment section by section (packages, hardware, drivers, ...), datasets,
// metrics and seeds. Every mapping difference has one shape: {added, removed, changed: {k: {a, b}}}.
import type { JSX } from "preact";
import { numberedDiff } from "../lib/compare";
import "./compare-diff.css";

type Json = unknown;
interface MappingDiff { added: Record<string, Json>; removed: Record<string, Json>; changed: Record<string, { a: Json; b: Json }> }

function show(v: Json): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number" && !Number.isInteger(v)) return String(Number(v.toPrecision(6)));
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function isMappingDiff(v: Json): v is MappingDiff {
  return !!v && typeof v === "object" && "added" in v && "removed" in v && "changed" in v;
}

const ENV_SECTIONS = ["packages", "hardware", "drivers", "python", "os", "host", "frameworks", "env"];

function differs(v: Json): boolean {
  return isMappingDiff(v) && Object.keys(v.added).length + Object.keys(v.removed).length + Object.keys(v.changed).length > 0;
}

const WORDS = { changed: "changed", removed: "only in A", added: "only in B" };
/** Packages read better as what B did to A's environment. */
const PACKAGE_WORDS = { changed: "version changed", removed: "removed", added: "added" };

/** One mapping difference as a table: a row per key, A and B side by side. */
export function MappingDiffTable({ title, diff, words = WORDS }: { title: string; diff: MappingDiff; words?: typeof WORDS }) {
  const rows: [string, string, Json, Json][] = [
    ...Object.entries(diff.changed).map(([k, v]) => [k, words.changed, v.a, v.b] as [string, string, Json, Json]),
    ...Object.entries(diff.removed).map(([k, v]) => [k, words.removed, v, null] as [string, string, Json, Json]),
    ...Object.entries(diff.added).map(([k, v]) => [k, words.added, null, v] as [string, string, Json, Json]),
  ];
  return (
    <div class="diff-section">
      <h3>{title}</h3>
      {rows.length === 0 ? <p class="help">no differences</p> : (
        <table class="list">
          <thead><tr><th scope="col">Key</th><th scope="col">Change</th><th scope="col">A</th><th scope="col">B</th></tr></thead>
          <tbody>{rows.map(([k, what, a, b]) => (
            <tr key={k} class="differs"><th scope="row">{k}</th><td>{what}</td><td>{show(a)}</td><td>{show(b)}</td></tr>
          ))}</tbody>
        </table>
      )}
    </div>
  );
}

/** A unified diff as a table: old and new line numbers, then the line; added and removed lines
 * coloured and also marked by their +/- sign and a hidden word, so colour is not the only cue. */
function UnifiedDiff({ text }: { text: string }) {
  const lines = numberedDiff(text);
  if (lines.length === 0) return <p class="help">The code archives hold the same files.</p>;
  return (
    <div class="compare-udiff" tabIndex={0} role="region" aria-label="Code: unified diff">
      <table>
        <thead><tr><th scope="col">Old</th><th scope="col">New</th><th scope="col">Line</th></tr></thead>
        <tbody>{lines.map((l, i) => (
          <tr key={i} class={`compare-udiff-${l.kind}`}>
            <td class="compare-udiff-no">{l.old ?? ""}</td><td class="compare-udiff-no">{l.new ?? ""}</td>
            <td><code>{l.kind === "add" && <span class="visually-hidden">added: </span>}
              {l.kind === "del" && <span class="visually-hidden">removed: </span>}{l.text}</code></td>
          </tr>
        ))}</tbody>
      </table>
    </div>
  );
}

export function RunDiff({ diff }: { diff: Record<string, Json> }) {
  const a = (diff.a ?? {}) as Record<string, Json>;
  const b = (diff.b ?? {}) as Record<string, Json>;
  const code = (diff.code ?? {}) as Record<string, Json>;
  const env = (diff.environment ?? {}) as Record<string, Json>;
  const metrics = (diff.metrics ?? {}) as Record<string, Json>;
  const perKey = (metrics.metrics ?? {}) as Record<string, Record<string, Json>>;
  const command = (diff.command ?? {}) as Record<string, Json>;
  const parts: JSX.Element[] = [];

  if (isMappingDiff(diff.params)) parts.push(<MappingDiffTable key="params" title="Params" diff={diff.params} />);

  const ca = (code.a ?? null) as Record<string, Json> | null;
  const cb = (code.b ?? null) as Record<string, Json> | null;
  const fields = [...new Set([...Object.keys(ca ?? {}), ...Object.keys(cb ?? {})])];
  parts.push(
    <div class="diff-section" key="code">
      <h3>Code</h3>
      <p>{code.same_archive ? "Same code archive." : "The code archives differ (or one run has none)."}
        {code.git_diff_changed ? " The uncommitted changes (git diff) differ." : ""}</p>
      {fields.length > 0 && (
        <table class="list">
          <thead><tr><th scope="col">Field</th><th scope="col">A</th><th scope="col">B</th></tr></thead>
          <tbody>{fields.map((f) => (
            <tr key={f} class={show(ca?.[f]) !== show(cb?.[f]) ? "differs" : ""}>
              <th scope="row">{f}</th><td>{show(ca?.[f])}</td><td>{show(cb?.[f])}</td></tr>
          ))}</tbody>
        </table>
      )}
      {typeof code.unified_diff === "string" ? <UnifiedDiff text={code.unified_diff} />
        : <p class="help">{typeof code.unified_diff_error === "string" ? code.unified_diff_error
            : "The file-by-file diff of the two archives is made by the client: `cairn runs diff A B`."}</p>}
    </div>,
  );

  if (env.recorded) {
    const rec = env.recorded as { a?: boolean; b?: boolean };
    parts.push(
      <div class="diff-section" key="env">
        <h3>Environment</h3>
        <p>{!rec.a || !rec.b ? `Recorded for ${rec.a ? "A only" : rec.b ? "B only" : "neither run"}.`
          : env.identical ? "Identical." : "Differs:"}</p>
        {ENV_SECTIONS.filter((s) => differs(env[s])).map((s) =>
          <MappingDiffTable key={s} title={s} diff={env[s] as MappingDiff} words={s === "packages" ? PACKAGE_WORDS : WORDS} />)}
        {ENV_SECTIONS.some((s) => isMappingDiff(env[s]) && !differs(env[s])) && (
          <p class="help">No differences in: {ENV_SECTIONS.filter((s) => isMappingDiff(env[s]) && !differs(env[s])).join(", ")}.</p>
        )}
      </div>,
    );
  }
  if (isMappingDiff(diff.datasets)) parts.push(<MappingDiffTable key="datasets" title="Datasets" diff={diff.datasets} />);
  if (isMappingDiff(diff.seeds)) parts.push(<MappingDiffTable key="seeds" title="Seeds" diff={diff.seeds} />);

  const mkeys = Object.keys(perKey);
  parts.push(
    <div class="diff-section" key="metrics">
      <h3>Metrics (last values)</h3>
      {mkeys.length === 0 ? <p class="help">no metric both runs have</p> : (
        <table class="list">
          <thead><tr><th scope="col">Key</th><th scope="col">A</th><th scope="col">B</th><th scope="col">B − A</th></tr></thead>
          <tbody>{mkeys.map((k) => (
            <tr key={k} class={perKey[k]!.within_tolerance ? "" : "differs"}>
              <th scope="row">{k}</th><td>{show(perKey[k]!.a)}</td><td>{show(perKey[k]!.b)}</td><td>{show(perKey[k]!.delta)}</td></tr>
          ))}</tbody>
        </table>
      )}
      {(["only_in_a", "only_in_b"] as const).map((s) => Array.isArray(metrics[s]) && (metrics[s] as string[]).length > 0 &&
        <p key={s}>{s === "only_in_a" ? "Only in A" : "Only in B"}: {(metrics[s] as string[]).join(", ")}</p>)}
    </div>,
  );
  if (command.a !== undefined || command.b !== undefined) {
    parts.push(
      <div class="diff-section" key="command">
        <h3>Command</h3>
        <p>{command.same ? "Same command: " : "A: "}<code>{show(command.a)}</code>
          {!command.same && <> · B: <code>{show(command.b)}</code></>}</p>
      </div>,
    );
  }
  return (
    <section aria-labelledby="diff-title">
      <h2 id="diff-title">Run diff: A = {show(a.name) || show(a.id)}, B = {show(b.name) || show(b.id)}</h2>
      {parts}
    </section>
  );
}

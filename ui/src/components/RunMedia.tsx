// The run page's "Media" section (issue 28, docs/media.md): one card per key the run logged media
// under (run.log_image & co., or MLflow's log_image/log_figure/log_table), with a step slider.
// Images show as thumbnails that open at full size; tables are previewed as the artifact browser
// previews them; text with line numbers; HTML only inside a sandboxed frame (no scripts, an opaque
// origin), never inline in the page. Media logged while the page is open appear (media.logged over SSE).
import { useEffect, useState } from "preact/hooks";
import { api } from "../client";
import { reloadUntil } from "../lib/action";
import { blobUrl, formatSize, tableUrl } from "../lib/files";
import {
  byStep, displayOf, mediaKeysUrl, mediaUrl, splitTable, tableFormatOf, type MediaEntry, type MediaKey,
} from "../lib/media";
import { decodeText, TEXT_LIMIT } from "../lib/preview";
import { LiveState, useEventStream } from "./EventStream";
import { fetchBlob, NumberedText, Truncated } from "./Preview";
import "./media.css";

const MEDIA_EVENTS = ["media.logged", "media.thumbnail_logged"] as const;
const JSON_TABLE_LIMIT = 2 * 1024 * 1024;

/** A blob as an object URL of the given type (revoked when it changes or the view goes). */
function useBlobUrl(digest: string | null, type: string): { url: string | null; error: string | null } {
  const [state, setState] = useState<{ url: string | null; error: string | null }>({ url: null, error: null });
  useEffect(() => {
    setState({ url: null, error: null });
    if (!digest) return;
    let alive = true;
    let made: string | null = null;
    fetchBlob(digest).then((bytes) => {
      made = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
      if (alive) setState({ url: made, error: null });
      else URL.revokeObjectURL(made);
    }, (e: Error) => { if (alive) setState({ url: null, error: e.message }); });
    return () => {
      alive = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [digest, type]);
  return state;
}

function Download({ e, label }: { e: MediaEntry; label: string }) {
  return <a href={blobUrl(e.digest)} download={e.key.replace(/\//g, "_")}>{label}</a>;
}

function ImageView({ e }: { e: MediaEntry }) {
  const [full, setFull] = useState(false);
  useEffect(() => setFull(false), [e.digest]);
  const thumb = useBlobUrl(e.thumbnail_digest ?? e.digest, e.thumbnail_digest ? (e.thumbnail_type ?? "image/png") : e.media_type);
  const isImage = e.media_type.startsWith("image/");
  const big = useBlobUrl(full && isImage ? e.digest : null, e.media_type);
  const name = `${e.key} at step ${e.step}`;
  return (
    <>
      {thumb.error && <p class="error" role="alert">{thumb.error}</p>}
      {/* the name holds the visible text: "Loading…" until the thumbnail is there (axe's label-content-name-mismatch) */}
      <button type="button" class="media-thumb" onClick={() => setFull(true)}
        aria-label={thumb.url ? `Show ${name} at full size` : `Loading… ${name}`}>
        {thumb.url ? <img src={thumb.url} alt={name} class="media-image" /> : <span role="status">Loading…</span>}
      </button>
      {e.width !== null && e.height !== null && <p class="help">{e.width} × {e.height} px, {formatSize(e.size)}</p>}
      {full && (
        <div class="media-full" role="dialog" aria-label={`${name}, full size`}>
          <button type="button" onClick={() => setFull(false)}>Close</button>
          {isImage
            ? (big.url ? <img src={big.url} alt={`${name}, full size`} class="media-full-image" /> : <span role="status">Loading…</span>)
            : <p class="help">An interactive figure (HTML): <Download e={e} label="download it" /> to open it.</p>}
        </div>
      )}
    </>
  );
}

interface Table { columns: string[]; rows: unknown[][]; total: number | null }
const cell = (v: unknown) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

async function loadTable(e: MediaEntry): Promise<Table | string> {
  const format = tableFormatOf(e.media_type);
  if (format) {
    const t = await api.get<{ columns: { name: string; type: string }[]; rows: unknown[][]; total: number | null }>(
      tableUrl(e.digest, format));
    return { columns: t.columns.map((c) => `${c.name} ${c.type}`), rows: t.rows, total: t.total };
  }
  if (e.size > JSON_TABLE_LIMIT) return "This table is too large to preview here; download it.";
  const t = splitTable(decodeText(await fetchBlob(e.digest), e.size, JSON_TABLE_LIMIT).text);
  return t ? { ...t, rows: t.rows.slice(0, 50), total: t.rows.length } : "Not a table this page can read; download it.";
}

function TableView({ e }: { e: MediaEntry }) {
  const [table, setTable] = useState<Table | string | null>(null);
  useEffect(() => {
    let alive = true;
    setTable(null);
    loadTable(e).then((t) => { if (alive) setTable(t); }, (err: Error) => { if (alive) setTable(`Preview failed: ${err.message}`); });
    return () => { alive = false; };
  }, [e.digest]);
  if (table === null) return <p role="status">Loading…</p>;
  if (typeof table === "string") return <p class="help">{table}</p>;
  return (
    <div class="media-scroll">
      <table class="list" aria-label={`Table ${e.key} at step ${e.step}`}>
        <thead><tr>{table.columns.map((c) => <th scope="col" key={c}>{c}</th>)}</tr></thead>
        <tbody>{table.rows.map((r, i) => <tr key={i}>{r.map((v, j) => <td key={j}>{cell(v)}</td>)}</tr>)}</tbody>
      </table>
      <p class="help">The first {table.rows.length} of {table.total ?? "?"} rows.</p>
    </div>
  );
}

function TextView({ e, frame }: { e: MediaEntry; frame: boolean }) {
  const [text, setText] = useState<{ text: string; truncated: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    setText(null);
    fetchBlob(e.digest, TEXT_LIMIT).then((b) => { if (alive) setText(decodeText(b, e.size)); },
      (err: Error) => { if (alive) setError(err.message); });
    return () => { alive = false; };
  }, [e.digest]);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!text) return <p role="status">Loading…</p>;
  if (frame) {
    // sandbox="" : no scripts, no forms, no navigation of this page, an origin of its own
    return (
      <>
        <iframe class="media-frame" sandbox="" srcdoc={text.text} title={`HTML ${e.key} at step ${e.step}`} />
        {text.truncated && <Truncated shown={TEXT_LIMIT} size={e.size} />}
      </>
    );
  }
  return (
    <>
      <NumberedText text={text.text} label={`Text ${e.key} at step ${e.step}`} />
      {text.truncated && <Truncated shown={TEXT_LIMIT} size={e.size} />}
    </>
  );
}

function EntryView({ e }: { e: MediaEntry }) {
  const display = displayOf(e);
  if (display === "image") return <ImageView e={e} />;
  if (display === "table") return <TableView e={e} />;
  if (display === "text" || display === "frame") return <TextView e={e} frame={display === "frame"} />;
  return <p class="help">An interactive figure (HTML, {formatSize(e.size)}) with no picture of it: <Download e={e} label="download it" /> to open it.</p>;
}

function MediaKeyCard({ project, runId, mediaKey, version }: { project: string; runId: string; mediaKey: MediaKey; version: number }) {
  const [steps, setSteps] = useState<MediaEntry[] | null>(null);
  const [index, setIndex] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.get<{ media: MediaEntry[] }>(mediaUrl(project, runId, mediaKey.key)).then((page) => {
      const shown = byStep(page.media);
      setSteps(shown);
      setIndex((i) => (i === null || i >= shown.length - 1 ? shown.length - 1 : i)); // follow the last step
    }, (e: Error) => setError(e.message));
  }, [project, runId, mediaKey.key, version, mediaKey.count]);
  const current = steps && index !== null ? steps[index] : undefined;
  const sliderId = `media-step-${mediaKey.key}`;
  return (
    <article class="media-card" aria-label={`Media ${mediaKey.key}`}>
      <h3>{mediaKey.key} <span class="media-kind">{mediaKey.kind}</span></h3>
      {error && <p class="error" role="alert">{error}</p>}
      {steps && steps.length > 1 && index !== null && (
        <div class="media-slider">
          <label for={sliderId}>Step</label>{" "}
          <input id={sliderId} type="range" min="0" max={steps.length - 1} step="1" value={index}
                 aria-valuetext={`step ${steps[index]!.step}`}
                 onInput={(ev) => setIndex(Number((ev.target as HTMLInputElement).value))} />{" "}
          <output for={sliderId}>step {steps[index]!.step}</output>
          <span class="help"> ({index + 1} of {steps.length})</span>
        </div>
      )}
      {steps && steps.length === 1 && <p class="help">step {steps[0]!.step}</p>}
      {!steps && !error && <p role="status">Loading…</p>}
      {current && <EntryView e={current} />}
      {current && <p class="help"><Download e={current} label="Download" /> ({current.media_type})</p>}
    </article>
  );
}

export function RunMedia({ project, runId }: { project: string; runId: string }) {
  const [keys, setKeys] = useState<MediaKey[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const load = () => api.get<{ keys: MediaKey[] }>(mediaKeysUrl(project, runId)).then((b) => {
    setKeys(b.keys);
    return b.keys.reduce((n, k) => n + k.count, 0);
  }, (e: Error) => { setError(e.message); return null; });
  const live = useEventStream(`/api/v1/events/stream?${new URLSearchParams({ project, types: MEDIA_EVENTS.join(",") })}`,
    MEDIA_EVENTS, (e) => {
      if (e.aggregate_id !== runId) return;
      const before = keys?.reduce((n, k) => n + k.count, 0) ?? 0;
      void reloadUntil(load, (n) => n === null || n > before || e.type !== "media.logged").then(() => setVersion((v) => v + 1));
    });
  useEffect(() => { void load(); }, [project, runId, live === "live"]);
  return (
    <section class="media" aria-labelledby="run-media-h">
      <h2 id="run-media-h">Media <LiveState live={live} /></h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!keys ? (!error && <p role="status">Loading media…</p>) : keys.length === 0
        ? <p class="help">No media logged (run.log_image, log_figure, log_table, log_text, log_html).</p>
        : <div class="media-grid">{keys.map((k) => <MediaKeyCard key={k.key} project={project} runId={runId} mediaKey={k} version={version} />)}</div>}
    </section>
  );
}

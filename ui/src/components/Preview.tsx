// The preview of one artifact file, chosen by its name (lib/preview.ts): text and JSON from the
// blob's first bytes (a Range request), images as <img> of a blob: URL typed by the name (the
// gateway's CSP allows blob: images; SVG is never inlined as markup), tables from the artifacts
// service's preview route, a model signature as tables; anything else its facts and a download.
import { useEffect, useState } from "preact/hooks";
import { api } from "../client";
import { ApiError, errorMessage } from "../lib/api";
import { baseName, blobUrl, formatSize, tableUrl, type FileEntry } from "../lib/files";
import {
  decodeText, IMAGE_LIMIT, imageMime, lines, parseSignature, prettyJson, previewKind, tableFormat, TEXT_LIMIT,
  type Signature, type SignatureColumn,
} from "../lib/preview";

/** A blob's bytes (its first `limit` when given). */
export async function fetchBlob(digest: string, limit?: number): Promise<Uint8Array> {
  const headers: Record<string, string> = {};
  if (limit !== undefined) headers["Range"] = `bytes=0-${limit - 1}`;
  if (api.devBearer) headers["Authorization"] = `Bearer ${api.devBearer}`;
  const res = await fetch(blobUrl(digest), { credentials: "same-origin", headers });
  if (!res.ok) {
    let body: unknown = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, errorMessage(res.status, body));
  }
  return new Uint8Array(await res.arrayBuffer());
}

/** Text with line numbers (CSS counters: the numbers are not part of the copied text). */
export function NumberedText({ text, label }: { text: string; label: string }) {
  return (
    <pre class="files-code" tabIndex={0} aria-label={label}>
      <code>{lines(text).map((l, i) => <span key={i} class="files-line">{l}{"\n"}</span>)}</code>
    </pre>
  );
}

export function Truncated({ shown, size }: { shown: number; size: number }) {
  return <p class="help files-truncated">Truncated: showing the first {formatSize(shown)} of {formatSize(size)}; download the file for all of it.</p>;
}

type Loaded =
  | { kind: "text"; text: string; truncated: boolean; binary: boolean }
  | { kind: "json"; text: string; truncated: boolean; error?: string }
  | { kind: "image"; url: string }
  | { kind: "table"; columns: { name: string; type: string }[]; rows: unknown[][]; total: number | null }
  | { kind: "signature"; signature: Signature | null }
  | { kind: "none" };

async function load(file: FileEntry & { digest: string }): Promise<Loaded> {
  const kind = previewKind(file.path);
  if (kind === "text" || kind === "json") {
    const d = decodeText(await fetchBlob(file.digest, TEXT_LIMIT), file.size);
    if (kind === "text" || d.truncated || d.binary) return { kind: "text", ...d };
    const pretty = prettyJson(d.text);
    return pretty.ok ? { kind: "json", text: pretty.text, truncated: false }
      : { kind: "json", text: d.text, truncated: false, error: pretty.error };
  }
  if (kind === "image") {
    if (file.size > IMAGE_LIMIT) return { kind: "none" };
    const bytes = await fetchBlob(file.digest);
    return { kind: "image", url: URL.createObjectURL(new Blob([bytes as BlobPart], { type: imageMime(file.path) })) };
  }
  if (kind === "table") {
    const t = await api.get<{ columns: { name: string; type: string }[]; rows: unknown[][]; total: number | null }>(
      tableUrl(file.digest, tableFormat(file.path)!));
    return { kind: "table", ...t };
  }
  if (kind === "signature") {
    const d = decodeText(await fetchBlob(file.digest, TEXT_LIMIT), file.size);
    return { kind: "signature", signature: parseSignature(file.path, d.text) };
  }
  return { kind: "none" };
}

const cell = (v: unknown) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

function SignatureTable({ caption, cols }: { caption: string; cols: SignatureColumn[] }) {
  if (cols.length === 0) return null;
  return (
    <table class="list files-signature">
      <caption>{caption}</caption>
      <thead><tr><th scope="col">Column</th><th scope="col">Type</th><th scope="col">Shape</th><th scope="col">Required</th></tr></thead>
      <tbody>
        {cols.map((c) => (
          <tr key={c.name}><th scope="row">{c.name}</th><td><code>{c.type}</code></td><td>{c.shape ?? ""}</td><td>{c.optional ? "no" : "yes"}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

export function Preview({ file }: { file: FileEntry & { digest: string } }) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    let url: string | null = null;
    setLoaded(null);
    setError(null);
    load(file).then((l) => {
      if (l.kind === "image") url = l.url;
      if (alive) setLoaded(l);
      else if (url) URL.revokeObjectURL(url);
    }, (e: Error) => { if (alive) setError(e.message); });
    return () => {
      alive = false;
      if (url) URL.revokeObjectURL(url);
    };
  }, [file.digest, file.path]);

  const name = baseName(file.path);
  return (
    <section class="files-preview" aria-label={`Preview of ${file.path}`}>
      <h3>{file.path}</h3>
      <dl class="facts">
        <dt>Size</dt><dd>{formatSize(file.size)} ({file.size} bytes)</dd>
        <dt>Digest</dt><dd><code class="files-digest">{file.digest}</code></dd>
        <dt>Download</dt><dd><a href={blobUrl(file.digest)} download={name}>download {name}</a></dd>
      </dl>
      {error && <p class="error" role="alert">Preview failed: {error}</p>}
      {!loaded && !error && <p role="status">Loading preview…</p>}
      {loaded?.kind === "text" && (loaded.binary ? <p class="help">A binary file: no text preview.</p> : (
        <>
          <NumberedText text={loaded.text} label={`Text of ${file.path}`} />
          {loaded.truncated && <Truncated shown={TEXT_LIMIT} size={file.size} />}
        </>
      ))}
      {loaded?.kind === "json" && (
        <>
          {loaded.error && <p class="help">Not valid JSON ({loaded.error}): shown as text.</p>}
          <pre class="files-json" tabIndex={0} aria-label={`JSON of ${file.path}`}><code>{loaded.text}</code></pre>
        </>
      )}
      {loaded?.kind === "image" && <img class="files-image" src={loaded.url} alt={`Image artifact ${file.path}`} />}
      {loaded?.kind === "table" && (
        <>
          <p class="help">{loaded.total === null ? `The first ${loaded.rows.length} rows (the rest of the file could not be counted).`
            : `The first ${loaded.rows.length} of ${loaded.total} rows.`}</p>
          <div class="files-scroll">
            <table class="list files-table">
              <thead><tr>{loaded.columns.map((c) => <th key={c.name} scope="col">{c.name} <span class="files-type">{c.type}</span></th>)}</tr></thead>
              <tbody>{loaded.rows.map((r, i) => <tr key={i}>{r.map((v, j) => <td key={j}>{cell(v)}</td>)}</tr>)}</tbody>
            </table>
          </div>
        </>
      )}
      {loaded?.kind === "signature" && (loaded.signature ? (
        <div class="files-signatures">
          <SignatureTable caption="Signature inputs" cols={loaded.signature.inputs} />
          <SignatureTable caption="Signature outputs" cols={loaded.signature.outputs} />
          <SignatureTable caption="Signature params" cols={loaded.signature.params} />
        </div>
      ) : <p class="help">This model descriptor has no signature.</p>)}
      {loaded?.kind === "none" && <p class="help">No preview for this kind of file: download it.</p>}
    </section>
  );
}

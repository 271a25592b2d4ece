// How the run page previews a file, chosen by its name: text, JSON, an image, a table (CSV,
// Parquet, Arrow: rows come from the artifacts service), a model's signature (MLflow's `MLmodel`
// or Cairn's `cairn-model.json`), or nothing but size, digest and a download link. Artifact bytes
// are never rendered as markup: text is text, images (SVG too) go through <img>.
import { baseName } from "./files";

export type PreviewKind = "text" | "json" | "image" | "table" | "signature" | "none";

/** The first bytes a text preview shows. */
export const TEXT_LIMIT = 200 * 1024;
/** Images over this size are not loaded into the page (download them). */
export const IMAGE_LIMIT = 20 * 1024 * 1024;

const TEXT_EXT = new Set(["txt", "log", "md", "rst", "py", "ts", "tsx", "js", "jsx", "sh", "yaml", "yml", "toml",
  "ini", "cfg", "conf", "tsv", "c", "cc", "cpp", "h", "hpp", "cu", "rs", "go", "java", "r", "sql", "html", "xml",
  "css", "dockerfile", "makefile", "env", "gitignore", "properties", "tex"]);
const JSON_EXT = new Set(["json", "jsonl", "ipynb", "geojson"]);
const IMAGE_MIME: Record<string, string> = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg",
  gif: "image/gif", svg: "image/svg+xml", webp: "image/webp" };
const TABLE_EXT: Record<string, string> = { csv: "csv", parquet: "parquet", pq: "parquet", arrow: "arrow",
  feather: "arrow", ipc: "arrow" };
const TEXT_NAMES = new Set(["readme", "license", "makefile", "dockerfile", "requirements.txt", "procfile"]);

function extension(name: string): string {
  const base = baseName(name).toLowerCase();
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(dot + 1) : base.startsWith(".") ? base.slice(1) : "";
}

/** The preview for a file name. `jsonl` is shown as text (one document per line). */
export function previewKind(name: string): PreviewKind {
  const base = baseName(name);
  if (base === "MLmodel" || base === "cairn-model.json") return "signature";
  const ext = extension(name);
  if (ext === "jsonl") return "text";
  if (JSON_EXT.has(ext)) return "json";
  if (ext in IMAGE_MIME) return "image";
  if (ext in TABLE_EXT) return "table";
  if (TEXT_EXT.has(ext) || TEXT_NAMES.has(base.toLowerCase())) return "text";
  return "none";
}

export const imageMime = (name: string): string => IMAGE_MIME[extension(name)] ?? "application/octet-stream";
export const tableFormat = (name: string): string | null => TABLE_EXT[extension(name)] ?? null;

export interface Decoded {
  text: string;
  truncated: boolean;
  binary: boolean;
}

/** Bytes (the first `TEXT_LIMIT` of a file of `size`) as text: a NUL in the first 8 KiB means
 * binary; invalid UTF-8 shows as U+FFFD rather than failing. */
export function decodeText(bytes: Uint8Array, size: number, limit = TEXT_LIMIT): Decoded {
  const head = bytes.subarray(0, limit);
  const binary = head.subarray(0, 8192).includes(0);
  const truncated = size > head.length;
  let text = binary ? "" : new TextDecoder("utf-8", { fatal: false }).decode(head);
  if (truncated && text.endsWith("\uFFFD")) text = text.replace(/\uFFFD+$/, ""); // a character cut by the limit
  return { text, truncated, binary };
}

/** The text split into lines for a numbered listing (a final newline adds no empty line). */
export function lines(text: string): string[] {
  const out = text.split(/\r?\n/);
  if (out.length > 1 && out[out.length - 1] === "") out.pop();
  return out;
}

/** JSON text pretty-printed (2 spaces), or the parse error. */
export function prettyJson(text: string): { ok: true; text: string } | { ok: false; error: string } {
  try {
    return { ok: true, text: JSON.stringify(JSON.parse(text), null, 2) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

export interface SignatureColumn {
  name: string;
  type: string;
  shape?: string;
  optional?: boolean;
}

export interface Signature {
  inputs: SignatureColumn[];
  outputs: SignatureColumn[];
  params: SignatureColumn[];
}

function columns(spec: unknown): SignatureColumn[] {
  if (!Array.isArray(spec)) return [];
  return spec.map((c: Record<string, unknown>, i) => {
    const tensor = c["tensor-spec"] as { dtype?: string; shape?: unknown } | undefined;
    const type = tensor ? `tensor(${tensor.dtype ?? "?"})` : String(c.type ?? "?");
    const col: SignatureColumn = { name: typeof c.name === "string" ? c.name : `#${i}`, type };
    if (tensor?.shape !== undefined) col.shape = JSON.stringify(tensor.shape);
    else if (c.shape !== undefined) col.shape = JSON.stringify(c.shape);
    if (c.required === false || c.optional === true) col.optional = true;
    return col;
  });
}

/** A YAML scalar as MLflow writes a signature's specs: single-quoted ('' is a quote), double-quoted
 * (JSON escapes) or plain. */
function yamlScalar(raw: string): string {
  const v = raw.trim();
  if (v.startsWith("'") && v.endsWith("'") && v.length >= 2) return v.slice(1, -1).replace(/''/g, "'");
  if (v.startsWith('"') && v.endsWith('"')) return JSON.parse(v) as string;
  return v;
}

/** The signature block of an MLflow `MLmodel` file: `signature:` with `inputs:`/`outputs:`/
 * `params:` each a JSON list in a YAML string. Long strings that YAML folded over several lines
 * are joined. null when the file has no signature. */
export function parseMLmodelSignature(text: string): Signature | null {
  const src = text.split(/\r?\n/);
  const start = src.findIndex((l) => /^signature:\s*$/.test(l));
  if (start < 0) return null;
  const specs: Record<string, string> = {};
  let key: string | null = null;
  for (let i = start + 1; i < src.length; i++) {
    const line = src[i]!;
    if (line.trim() === "") continue;
    if (!/^\s/.test(line)) break; // the next top-level key
    const m = /^\s+(inputs|outputs|params):\s*(.*)$/.exec(line);
    if (m) {
      key = m[1]!;
      specs[key] = m[2]!;
    } else if (/^\s+[A-Za-z_]+:/.test(line)) {
      key = null; // another field of the signature
    } else if (key) {
      specs[key] += " " + line.trim(); // a folded continuation line
    }
  }
  const parse = (k: string): SignatureColumn[] => {
    const raw = specs[k];
    if (!raw || raw === "null") return [];
    return columns(JSON.parse(yamlScalar(raw)));
  };
  try {
    return { inputs: parse("inputs"), outputs: parse("outputs"), params: parse("params") };
  } catch {
    return null;
  }
}

/** The signature in Cairn's `cairn-model.json` descriptor (docs/serving.md), or null. */
export function cairnModelSignature(text: string): Signature | null {
  try {
    const sig = (JSON.parse(text) as { signature?: { inputs?: unknown; outputs?: unknown; params?: unknown } }).signature;
    if (!sig) return null;
    return { inputs: columns(sig.inputs), outputs: columns(sig.outputs), params: columns(sig.params) };
  } catch {
    return null;
  }
}

/** Either descriptor, by name. */
export function parseSignature(name: string, text: string): Signature | null {
  return baseName(name) === "MLmodel" ? parseMLmodelSignature(text) : cairnModelSignature(text);
}

// The file-by-file unified diff of two runs' code archives, made in the browser as `cairn runs
// diff` makes it on the command line: the registry's diff names the two archives (content
// addresses), the page downloads both from the artifact store, unpacks them (deterministic tar.gz:
// regular files only) and diffs every text file that differs. Pure parts (tar reading, line diff,
// hunks) are tested alone; `archiveFiles` needs the browser's DecompressionStream.

/** Files of an (uncompressed) tar: name -> bytes; regular files only, as code snapshots hold. */
export function readTar(buf: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const text = (from: number, len: number) => {
    let end = from;
    while (end < from + len && buf[end] !== 0) end++;
    return new TextDecoder().decode(buf.subarray(from, end));
  };
  let at = 0;
  let longName: string | null = null;
  while (at + 512 <= buf.length) {
    if (buf.subarray(at, at + 512).every((b) => b === 0)) break; // the end marker
    const size = parseInt(text(at + 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(buf[at + 156] ?? 0);
    const prefix = text(at + 345, 155);
    const body = buf.subarray(at + 512, at + 512 + size);
    if (type === "L") longName = new TextDecoder().decode(body).replace(/\0+$/, ""); // GNU long name
    else {
      const name = longName ?? (prefix ? `${prefix}/${text(at, 100)}` : text(at, 100));
      longName = null;
      if (type === "0" || type === "\0") files.set(name, body);
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** A gzip-compressed tar's files (the browser unzips with DecompressionStream). */
export async function archiveFiles(gz: ArrayBuffer): Promise<Map<string, Uint8Array>> {
  const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
  return readTar(new Uint8Array(await new Response(stream).arrayBuffer()));
}

type Op = { t: " " | "-" | "+"; line: string };

/** A line-level edit script (longest common subsequence), after trimming the common head and tail;
 * past `maxCells` of the table the middle is taken as all removed then all added. */
export function diffLines(a: string[], b: string[], maxCells = 4_000_000): Op[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const mid: Op[] = [];
  if (x.length * y.length > maxCells) {
    mid.push(...x.map((line) => ({ t: "-" as const, line })), ...y.map((line) => ({ t: "+" as const, line })));
  } else {
    const w = y.length + 1;
    const lcs = new Uint32Array((x.length + 1) * w);
    for (let i = x.length - 1; i >= 0; i--) {
      for (let j = y.length - 1; j >= 0; j--) {
        lcs[i * w + j] = x[i] === y[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
      }
    }
    let i = 0;
    let j = 0;
    while (i < x.length || j < y.length) {
      if (i < x.length && j < y.length && x[i] === y[j]) { mid.push({ t: " ", line: x[i]! }); i++; j++; }
      else if (i < x.length && (j === y.length || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) mid.push({ t: "-", line: x[i++]! });
      else mid.push({ t: "+", line: y[j++]! }); // removals before additions, as difflib writes them
    }
  }
  return [...a.slice(0, head).map((line) => ({ t: " " as const, line })), ...mid,
    ...a.slice(a.length - tail).map((line) => ({ t: " " as const, line }))];
}

/** Unified-diff hunks (`context` lines around each change), as difflib writes them. */
export function hunks(ops: Op[], context = 3): string[] {
  const changed = ops.map((o, i) => (o.t === " " ? -1 : i)).filter((i) => i >= 0);
  if (changed.length === 0) return [];
  const groups: [number, number][] = [];
  for (const i of changed) {
    const last = groups[groups.length - 1];
    if (last && i - last[1] <= 2 * context) last[1] = i;
    else groups.push([i, i]);
  }
  // the old and new line number before each op
  const oldAt: number[] = [];
  const newAt: number[] = [];
  let o = 0;
  let n = 0;
  for (const op of ops) { oldAt.push(o); newAt.push(n); if (op.t !== "+") o++; if (op.t !== "-") n++; }
  const out: string[] = [];
  for (const [first, last] of groups) {
    const from = Math.max(0, first - context);
    const to = Math.min(ops.length - 1, last + context);
    const part = ops.slice(from, to + 1);
    const oldLen = part.filter((p) => p.t !== "+").length;
    const newLen = part.filter((p) => p.t !== "-").length;
    const range = (start: number, len: number) => (len === 0 ? `${start},0` : len === 1 ? `${start + 1}` : `${start + 1},${len}`);
    out.push(`@@ -${range(oldAt[from]!, oldLen)} +${range(newAt[from]!, newLen)} @@`);
    for (const p of part) out.push(`${p.t}${p.line}`);
  }
  return out;
}

const splitLines = (s: string) => (s === "" ? [] : s.replace(/\n$/, "").split("\n"));

/** The unified diff of two snapshots (name -> bytes), file by file in name order; a file that is not
 * UTF-8 text is "Binary files ... differ". */
export function diffSnapshots(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): string {
  const out: string[] = [];
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const same = (x?: Uint8Array, y?: Uint8Array) => !!x && !!y && x.length === y.length && x.every((v, i) => v === y[i]);
  for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(name);
    const y = b.get(name);
    if (same(x, y)) continue;
    let xs: string[];
    let ys: string[];
    try {
      xs = splitLines(x ? utf8.decode(x) : "");
      ys = splitLines(y ? utf8.decode(y) : "");
    } catch {
      out.push(`Binary files a/${name} and b/${name} differ`);
      continue;
    }
    out.push(`--- ${x ? `a/${name}` : "/dev/null"}`, `+++ ${y ? `b/${name}` : "/dev/null"}`, ...hunks(diffLines(xs, ys)));
  }
  return out.length ? `${out.join("\n")}\n` : "";
}

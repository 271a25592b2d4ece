// The run page's file browsers (code snapshot, artifacts): a flat listing of paths turned into a
// tree, the rows of that tree a reader has opened, sizes for people, and the API paths of the
// artifact store's blobs and previews (services/artifacts/api_blobs.py, api_preview.py).
import { seg } from "./api";

/** One file of a listing: a path with "/" between folders; artifacts carry their blob digest. */
export interface FileEntry {
  path: string;
  size: number;
  digest?: string;
}

export interface TreeNode {
  name: string;
  path: string;
  size: number;
  /** Folders have children (sorted: folders first, then files, each by name); files have null. */
  children: TreeNode[] | null;
  digest?: string;
  /** Files under a folder (1 for a file). */
  files: number;
}

/** A run's artifact record (GET .../runs/{id}/artifacts). */
export interface Artifact {
  name: string;
  digest: string;
  kind: "file" | "directory" | "model";
  size: number;
  files: number;
}

/** A manifest entry (GET /manifests/{digest}). */
export interface ManifestEntry {
  path: string;
  kind: string;
  size: number;
  digest: string;
}

/** 1536 -> "1.5 KiB": binary units, one decimal below 10, none above; bytes as they are. */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes} B`;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

const byName = (a: TreeNode, b: TreeNode) =>
  (a.children === null ? 1 : 0) - (b.children === null ? 1 : 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The tree of a flat listing. Empty path parts ("a//b", leading "/") are dropped; a file and a
 * folder of the same path keep both (the folder first). */
export function buildTree(entries: readonly FileEntry[]): TreeNode[] {
  const root: TreeNode = { name: "", path: "", size: 0, children: [], files: 0 };
  const folders = new Map<string, TreeNode>([["", root]]);
  for (const e of entries) {
    const parts = e.path.split("/").filter((p) => p !== "");
    if (parts.length === 0) continue;
    let parent = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const path = parts.slice(0, i + 1).join("/");
      let dir = folders.get(path);
      if (!dir) {
        dir = { name: parts[i]!, path, size: 0, children: [], files: 0 };
        folders.set(path, dir);
        parent.children!.push(dir);
      }
      parent = dir;
    }
    parent.children!.push({ name: parts[parts.length - 1]!, path: parts.join("/"), size: e.size, children: null,
      digest: e.digest, files: 1 });
  }
  const finish = (n: TreeNode): void => {
    if (n.children === null) return;
    n.children.forEach(finish);
    n.children.sort(byName);
    n.size = n.children.reduce((s, c) => s + c.size, 0);
    n.files = n.children.reduce((s, c) => s + c.files, 0);
  };
  finish(root);
  return root.children!;
}

export interface TreeRow {
  node: TreeNode;
  depth: number;
  open: boolean;
}

/** The rows to show: every top-level node, and the children of each open folder, in order. */
export function visibleRows(nodes: readonly TreeNode[], open: ReadonlySet<string>, depth = 0): TreeRow[] {
  const rows: TreeRow[] = [];
  for (const node of nodes) {
    const isOpen = node.children !== null && open.has(node.path);
    rows.push({ node, depth, open: isOpen });
    if (isOpen) rows.push(...visibleRows(node.children!, open, depth + 1));
  }
  return rows;
}

/** Folders to open at first: a single top folder chain is opened so its files show at once. */
export function initiallyOpen(nodes: readonly TreeNode[]): Set<string> {
  const open = new Set<string>();
  let level = nodes;
  while (level.length === 1 && level[0]!.children !== null) {
    open.add(level[0]!.path);
    level = level[0]!.children!;
  }
  return open;
}

/** A run's artifacts as one listing: a file under its name, a directory or model's files (from
 * its manifest, when loaded) under `name/`. A folder whose manifest is missing shows as one entry. */
export function artifactEntries(artifacts: readonly Artifact[], manifests: Readonly<Record<string, ManifestEntry[]>>): FileEntry[] {
  const out: FileEntry[] = [];
  for (const a of artifacts) {
    const entries = a.kind === "file" ? undefined : manifests[a.digest];
    if (!entries) {
      out.push({ path: a.name, size: a.size, digest: a.kind === "file" ? a.digest : undefined });
      continue;
    }
    for (const e of entries) {
      if (e.kind === "file") out.push({ path: `${a.name}/${e.path}`, size: e.size, digest: e.digest });
    }
  }
  return out;
}

export const blobUrl = (digest: string) => `/api/v1/artifacts/blobs/${seg(digest)}`;
export const manifestUrl = (digest: string) => `/api/v1/artifacts/manifests/${seg(digest)}`;
export const tableUrl = (digest: string, format: string, rows = 50) =>
  `${blobUrl(digest)}/table?${new URLSearchParams({ format, rows: String(rows) })}`;
export const archiveUrl = (digest: string) => `${blobUrl(digest)}/archive`;
export const archiveFileUrl = (digest: string, path: string) =>
  `${blobUrl(digest)}/archive/file?${new URLSearchParams({ path })}`;
export const artifactsUrl = (project: string, runId: string) =>
  `/api/v1/artifacts/projects/${seg(project)}/runs/${seg(runId)}/artifacts`;
export const environmentUrl = (project: string, runId: string) =>
  `/api/v1/registry/projects/${seg(project)}/runs/${seg(runId)}/environment`;

/** The last part of a path (a download's file name). */
export function baseName(path: string): string {
  const parts = path.split("/").filter((p) => p !== "");
  return parts[parts.length - 1] ?? path;
}

// A file tree as a table (name, size, digest, download): folders open and close with a button
// (aria-expanded), a file's name is a button that selects it for preview. Used by the run page's
// code and artifacts browsers (components/RunFiles.tsx).
import { useEffect, useMemo, useState } from "preact/hooks";
import { baseName, blobUrl, buildTree, formatSize, initiallyOpen, visibleRows, type FileEntry } from "../lib/files";

interface Props {
  label: string;
  entries: FileEntry[];
  selected: string | null;
  onSelect: (e: FileEntry) => void;
  /** Artifacts show digests and download links; a code snapshot's files have neither. */
  downloads?: boolean;
}

export function FileTree({ label, entries, selected, onSelect, downloads = false }: Props) {
  const tree = useMemo(() => buildTree(entries), [entries]);
  const [open, setOpen] = useState<Set<string>>(() => initiallyOpen(tree));
  useEffect(() => setOpen((cur) => (cur.size ? cur : initiallyOpen(tree))), [tree]);
  const rows = visibleRows(tree, open);
  const toggle = (path: string) => setOpen((cur) => {
    const next = new Set(cur);
    if (next.has(path)) next.delete(path);
    else next.add(path);
    return next;
  });
  return (
    <table class="list files-tree" aria-label={label}>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col" class="files-num">Size</th>
          {downloads && <th scope="col">Digest</th>}
          {downloads && <th scope="col">Download</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map(({ node, depth, open: isOpen }) => (
          <tr key={node.path} class={node.path === selected ? "files-selected" : undefined}>
            <th scope="row" style={{ paddingLeft: `${0.6 + depth * 1.2}rem` }}>
              {node.children !== null ? (
                <button type="button" class="files-folder" aria-expanded={isOpen} onClick={() => toggle(node.path)}>
                  <span aria-hidden="true">{isOpen ? "▾ " : "▸ "}</span>{node.name}/
                </button>
              ) : (
                <button type="button" class="files-file" aria-pressed={node.path === selected}
                  onClick={() => onSelect({ path: node.path, size: node.size, digest: node.digest })}>
                  {node.name}
                </button>
              )}
            </th>
            <td class="files-num">{formatSize(node.size)}{node.children !== null && ` (${node.files} file${node.files === 1 ? "" : "s"})`}</td>
            {downloads && <td>{node.digest ? <code title={node.digest}>{node.digest.slice(0, 12)}…</code> : ""}</td>}
            {downloads && (
              <td>
                {node.digest && (
                  <a href={blobUrl(node.digest)} download={baseName(node.path)} aria-label={`Download ${node.path}`}>download</a>
                )}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

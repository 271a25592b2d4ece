// The lineage around a node (the lineage service's graph of a run `run:<id>` or a model version
// `model:<name>@v<n>`, both ways, two hops): drawn left to right, what went in, the node, what
// came out; nodes with a page (datasets, models, runs) are links. The same nodes follow as a
// table, for screen readers and for copying.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { ApiError, seg } from "../lib/api";
import { routePath, type Route } from "../lib/router";
import { layoutLineage, nodeRoute, type Layout, type LineageGraph, type LineageNode } from "../lib/runpage";

const COL_W = 210;
const ROW_H = 44;
const BOX_W = 180;
const BOX_H = 30;
const PAD = 8;

function short(ref: string): string {
  return ref.length > 23 ? `${ref.slice(0, 22)}…` : ref;
}

/** A link's accessible name holds its visible (maybe shortened) text, then the whole ref. */
function linkName(n: { ref: string; title?: string | null }): string {
  const full = n.title && n.title !== n.ref ? `${n.ref} (${n.title})` : n.ref;
  return short(n.ref) === n.ref ? full : `${short(n.ref)}: ${full}`;
}

function side(col: number, center: number, here: string): string {
  return col < center ? "input" : col > center ? "output" : here;
}

export function RunLineage({ project, runId, navigate }: { project: string; runId: string; navigate: Navigate }) {
  return <LineageView project={project} nodeRef={`run:${runId}`} here="this run" navigate={navigate}
                      unseen="The lineage service has not seen this run yet." />;
}

interface ViewProps {
  project: string;
  /** The node in the lineage service's syntax (docs/lineage.md), also the drawn centre's ref. */
  nodeRef: string;
  /** What the centre column is called in the table ("this run", "this version"). */
  here: string;
  unseen: string;
  navigate: Navigate;
}

export function LineageView({ project, nodeRef, here: hereLabel, unseen, navigate }: ViewProps) {
  const [layout, setLayout] = useState<Layout | null | undefined>(undefined);
  const [centerRef, setCenterRef] = useState(nodeRef);
  const [error, setError] = useState<string | null>(null);
  const headId = `lineage-h-${nodeRef.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  useEffect(() => {
    setLayout(undefined);
    setError(null);
    const q = new URLSearchParams({ node: nodeRef, direction: "both", depth: "2", format: "json" });
    api.get<LineageGraph>(`/api/v1/lineage/projects/${seg(project)}/graph?${q}`)
      .then((g) => {
        const c = g.node?.ref ?? nodeRef;
        setCenterRef(c);
        setLayout(layoutLineage(g, c));
      }, (e: Error) => {
        // A node the lineage service has not seen yet is a 404: say so, it is not an error.
        if (e instanceof ApiError && e.status === 404) setLayout(null);
        else setError(e.message);
      });
  }, [project, nodeRef]);

  const go = (to: Route) => (e: Event) => { e.preventDefault(); navigate(to); };
  const pos = new Map(layout?.placed.map((p) => [p.node.id, p]) ?? []);
  const width = (layout?.cols ?? 0) * COL_W + PAD;
  const height = Math.max(1, layout?.rows ?? 0) * ROW_H + PAD;
  const label = (n: LineageNode) => n.title && n.title !== n.ref ? `${n.ref} (${n.title})` : n.ref;

  return (
    <section aria-labelledby={headId}>
      <h2 id={headId}>Lineage</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {layout === undefined && !error && <p role="status">Loading…</p>}
      {layout === null && <p class="help">{unseen}</p>}
      {layout && (
        <>
          <div class="run-scroll">
            <svg class="run-lineage" width={width} height={height} viewBox={`0 0 ${width} ${height}`}
                 role="group" aria-labelledby={headId}>
              <defs>
                <marker id="run-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">
                  <path d="M0,0 L10,5 L0,10 z" class="run-arrow" />
                </marker>
              </defs>
              {layout.edges.map((e) => {
                const a = pos.get(e.src)!;
                const b = pos.get(e.dst)!;
                const x1 = PAD + a.col * COL_W + BOX_W;
                const y1 = PAD / 2 + a.row * ROW_H + BOX_H / 2;
                const x2 = PAD + b.col * COL_W;
                const y2 = PAD / 2 + b.row * ROW_H + BOX_H / 2;
                const mid = (x1 + x2) / 2;
                return <path key={`${e.src}>${e.dst}>${e.type}`} class="run-edge" marker-end="url(#run-arrow)"
                             d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`}><title>{e.type}</title></path>;
              })}
              {layout.placed.map(({ node, col, row }) => {
                const to = nodeRoute(node, project);
                const here = col === layout.center && node.ref === centerRef;
                const box = (
                  <g transform={`translate(${PAD + col * COL_W},${PAD / 2 + row * ROW_H})`}
                     class={`run-node run-kind-${node.kind}${here ? " run-here" : ""}`} data-ref={node.ref}>
                    <title>{label(node)}</title>
                    <rect width={BOX_W} height={BOX_H} rx="4" />
                    <text x="8" y={BOX_H / 2 + 4}>{short(node.ref)}</text>
                  </g>
                );
                return to && !here
                  ? <a key={node.id} href={routePath(to)} onClick={go(to)} aria-label={linkName(node)}>{box}</a>
                  : <g key={node.id}>{box}</g>;
              })}
            </svg>
          </div>
          <details class="run-group">
            <summary>Lineage as a table</summary>
            <table class="list">
              <thead><tr><th scope="col">Node</th><th scope="col">Kind</th><th scope="col">Side</th></tr></thead>
              <tbody>{layout.placed.map(({ node, col }) => {
                const to = nodeRoute(node, project);
                return (
                  <tr key={node.id}>
                    <th scope="row">{to ? <a href={routePath(to)} onClick={go(to)}>{label(node)}</a> : label(node)}</th>
                    <td>{node.kind}</td><td>{side(col, layout.center, hereLabel)}</td>
                  </tr>
                );
              })}</tbody>
            </table>
          </details>
        </>
      )}
    </section>
  );
}

// A parallel coordinates plot (SVG): one axis per param plus the metric (last), one polyline per
// run coloured by the metric. Each line is a link (to the run) that can be hovered or focused with
// Tab: the line is drawn thicker and its values are read out below the plot. A table with the same
// numbers follows for screen readers and for anyone who prefers numbers. Used by the compare page
// and the sweep page; the scaling is lib/parcoords.ts.
import { useMemo, useState } from "preact/hooks";
import { formatNumber, lines, pathFor, ticks, type PcAxis, type PcValue } from "../lib/parcoords";
import "./parcoords.css";

export interface PcRow { id: string; label: string; values: Record<string, PcValue>; href?: string }

interface Props {
  axes: PcAxis[];
  rows: PcRow[];
  metric: string;
  caption: string;
  /** Following a line's link: the page navigates in-app. */
  onOpen?: (row: PcRow) => void;
}

const WIDTH = 760;
const TOP = 40;
const PLOT_H = 240;
const HEIGHT = TOP + PLOT_H + 30;
const SIDE = 70;

const show = (v: PcValue) => (v === null || v === undefined || v === "" ? "—"
  : typeof v === "number" ? formatNumber(v) : String(v));

export function ParallelCoords({ axes, rows, metric, caption, onOpen }: Props) {
  const [active, setActive] = useState<string | null>(null);
  const xs = axes.map((_, i) => (axes.length === 1 ? WIDTH / 2 : SIDE + (i * (WIDTH - 2 * SIDE)) / (axes.length - 1)));
  const drawn = useMemo(() => lines(rows, axes, metric), [rows, axes, metric]);
  const activeRow = rows.find((r) => r.id === active) ?? null;
  const describe = (r: PcRow) => `${r.label}: ${axes.map((a) => `${a.name} ${show(r.values[a.name])}`).join(", ")}`;
  const metricAxis = axes.find((a) => a.name === metric);

  return (
    <figure class="parcoords">
      <figcaption>{caption}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width={WIDTH} height={HEIGHT} role="group" aria-label={caption}
        data-lines={drawn.length}>
        {axes.map((a, i) => (
          <g key={a.name} class="pc-axis" aria-hidden="true">
            <line x1={xs[i]} x2={xs[i]} y1={TOP} y2={TOP + PLOT_H} />
            <text x={xs[i]} y={TOP - 18} text-anchor="middle" class="pc-name">{a.name}</text>
            {ticks(a).map((t) => (
              <text key={t.label} x={xs[i]! + 5} y={TOP + (1 - t.at) * PLOT_H + 4} class="pc-tick">{t.label}</text>
            ))}
          </g>
        ))}
        {drawn.map((l, i) => {
          const row = rows[i]!;
          const path = <path d={pathFor(l.points, xs, TOP, PLOT_H)} stroke={l.colour}
            class={active === l.id ? "pc-line pc-active" : "pc-line"} data-run={l.id} />;
          const events = {
            onMouseEnter: () => setActive(l.id), onMouseLeave: () => setActive(null),
            onFocus: () => setActive(l.id), onBlur: () => setActive(null),
          };
          return row.href ? (
            <a key={l.id} href={row.href} aria-label={describe(row)} {...events}
              onClick={(e) => { if (onOpen) { e.preventDefault(); onOpen(row); } }}>{path}</a>
          ) : <g key={l.id} tabIndex={0} role="img" aria-label={describe(row)} {...events}>{path}</g>;
        })}
      </svg>
      <p class="pc-readout" aria-live="polite">
        {activeRow ? describe(activeRow) : "Hover over a line or focus it with Tab to see its run."}
      </p>
      {metricAxis && metricAxis.kind === "numeric" && (
        <p class="help pc-scale">
          <span class="pc-swatch pc-low" aria-hidden="true" /> {metric} {formatNumber(metricAxis.min ?? 0)}
          {" … "}<span class="pc-swatch pc-high" aria-hidden="true" /> {formatNumber(metricAxis.max ?? 1)} (grey: no value)
        </p>
      )}
      <details class="pc-table">
        <summary>Data table</summary>
        <table class="list">
          <caption class="visually-hidden">{caption}</caption>
          <thead><tr><th scope="col">Run</th>{axes.map((a) => <th scope="col" key={a.name}>{a.name}</th>)}</tr></thead>
          <tbody>{rows.map((r) => (
            <tr key={r.id}><th scope="row">{r.label}</th>{axes.map((a) => <td key={a.name}>{show(r.values[a.name])}</td>)}</tr>
          ))}</tbody>
        </table>
      </details>
    </figure>
  );
}

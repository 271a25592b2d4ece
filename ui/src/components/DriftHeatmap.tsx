// Drift per column over time: one row per column, one cell per closed window, coloured by how far
// the column's drift score is past its method's threshold (lib/monitor.ts driftLevel). Each cell
// says its value on hover and on focus (the readout line), and the same figures are a real table
// below for screen readers and for copying. The grid is one tab stop (a roving tabindex): arrows
// move between cells, Home/End go to a row's first/last window.
import { useRef, useState } from "preact/hooks";
import { describeCell, driftColour, DRIFT_STEPS, formatNumber, NO_DRIFT_FILL, windowTime, type Heatmap } from "../lib/monitor";

export function DriftHeatmap({ map }: { map: Heatmap }) {
  const [readout, setReadout] = useState("Point at or focus a cell to read its drift.");
  const [active, setActive] = useState<[number, number]>([0, 0]);
  const grid = useRef<HTMLDivElement>(null);
  const rows = map.rows.length;
  const cols = map.times.length;
  const [ar, ac] = [Math.min(active[0], Math.max(0, rows - 1)), Math.min(active[1], Math.max(0, cols - 1))];
  const onKey = (e: KeyboardEvent) => {
    const moves: Record<string, [number, number]> = {
      ArrowUp: [ar - 1, ac], ArrowDown: [ar + 1, ac], ArrowLeft: [ar, ac - 1], ArrowRight: [ar, ac + 1],
      Home: [ar, 0], End: [ar, cols - 1],
    };
    const to = moves[e.key];
    if (!to) return;
    e.preventDefault();
    const [r, c] = [Math.max(0, Math.min(rows - 1, to[0])), Math.max(0, Math.min(cols - 1, to[1]))];
    setActive([r, c]);
    grid.current?.querySelector<HTMLElement>(`[data-cell="${r}-${c}"]`)?.focus();
  };
  if (map.columns.length === 0) return <p>No drift figures yet: a window has drift once the deployment has a reference profile (docs/monitor.md).</p>;
  const template = `minmax(6rem, max-content) repeat(${map.times.length}, minmax(1.1rem, 1fr))`;
  return (
    <div class="drift-heatmap">
      <div class="drift-grid" ref={grid} onKeyDown={onKey} style={{ gridTemplateColumns: template }} role="group"
           aria-label="Drift heatmap: columns by window (arrow keys move between cells)">
        {map.rows.map((row, i) => [
          <div class="drift-label" key={`l${i}`}>{map.columns[i]}</div>,
          ...row.map((c, j) => {
            const colour = driftColour(c.level);
            const text = `${describeCell(c)}, window ${windowTime(c.start)}`;
            return (
              <div key={`${c.column}-${c.start}`} class="drift-cell" role="img" data-cell={`${i}-${j}`}
                   tabIndex={i === ar && j === ac ? 0 : -1} title={text} aria-label={text}
                   style={{ background: colour.fill, color: colour.text }}
                   onMouseEnter={() => setReadout(text)} onFocus={() => { setReadout(text); setActive([i, j]); }}>
                {c.cell?.drifted ? "!" : ""}
              </div>
            );
          }),
        ])}
      </div>
      <p class="help drift-axis">{windowTime(map.times[0]!.start)} → {windowTime(map.times[map.times.length - 1]!.end)}</p>
      <p class="drift-readout" aria-live="polite">{readout}</p>
      <ul class="drift-legend" aria-label="Heatmap legend">
        {[...DRIFT_STEPS, NO_DRIFT_FILL].map((s) => (
          <li key={s.label}><span class="drift-swatch" style={{ background: s.fill }} aria-hidden="true" />{s.label}</li>
        ))}
        <li><span aria-hidden="true">!</span> the column drifted (its method's verdict)</li>
      </ul>
      <details class="drift-table">
        <summary>Drift as a table</summary>
        <table class="list">
          <caption>Drift score of each column per window (score / threshold, verdict)</caption>
          <thead><tr><th scope="col">Window</th>{map.columns.map((c) => <th scope="col" key={c}>{c}</th>)}</tr></thead>
          <tbody>
            {map.times.map((t, j) => (
              <tr key={t.start}>
                <th scope="row">{windowTime(t.start)}</th>
                {map.rows.map((row) => {
                  const c = row[j]!.cell;
                  return <td key={row[j]!.column}>{c && c.score != null
                    ? `${c.method} ${formatNumber(c.score)} / ${formatNumber(c.threshold)}, ${c.drifted ? "drifted" : "no drift"}` : "none"}</td>;
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}

// One metric key's chart (uPlot). It asks for as many points as the chart is wide; selecting a
// range with the mouse (or the step fields) asks again for just that step range, downsampled to
// the same width, so a million-point series shows every spike at every zoom.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { api } from "../client";
import type { History } from "../lib/types";
import { historyUrl, pointsFor, stepRange, stepsInTimeRange, toNumber, xBounds, type StepRange } from "../lib/zoom";

export type XAxis = "step" | "time";

interface Props { project: string; runId: string; metricKey: string; xAxis: XAxis }

const WIDTH = 720;
const HEIGHT = 240;

export function MetricChart({ project, runId, metricKey, xAxis }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const hist = useRef<History | null>(null);
  const [range, setRange] = useState<StepRange | null>(null);
  const [info, setInfo] = useState("");
  const [error, setError] = useState<string | null>(null);
  const titleId = `chart-${metricKey.replace(/[^A-Za-z0-9_-]/g, "_")}`;

  useEffect(() => {
    let gone = false;
    const url = historyUrl(project, runId, metricKey, pointsFor(WIDTH), range);
    api.get<History>(url).then((h) => {
      if (gone || !host.current) return;
      hist.current = h;
      const xs = xAxis === "time" ? h.timestamps : h.steps;
      const data: uPlot.AlignedData = [xs, h.values.map((v) => toNumber(v))];
      setInfo(`${h.steps.length.toLocaleString("en")} of ${h.total.toLocaleString("en")} points` +
        (h.method === "full" ? "" : ` (${h.method})`) + (range ? `, steps ${range.min}–${range.max}` : ""));
      setError(null);
      const bounds = range ? xBounds(h.steps, xs, range) : null;
      plot.current?.destroy();
      plot.current = new uPlot({
        width: WIDTH, height: HEIGHT,
        // Zoomed: the x scale is the zoomed range (the answer holds only that range's points).
        scales: { x: { time: xAxis === "time", ...(bounds ? { range: (): uPlot.Range.MinMax => bounds } : {}) } },
        axes: [{ label: xAxis }, {}],
        series: [{ label: xAxis }, { label: metricKey, stroke: "#1f5fbf", width: 1.5, points: { show: false } }],
        cursor: { drag: { x: true, y: false, setScale: false } },
        legend: { show: true },
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 2) return;
            const a = u.posToVal(u.select.left, "x");
            const b = u.posToVal(u.select.left + u.select.width, "x");
            const cur = hist.current;
            const next = xAxis === "time" && cur ? stepsInTimeRange(cur.steps, cur.timestamps, a, b) : stepRange(a, b);
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (next) setRange(next);
          }],
        },
      }, data, host.current);
    }, (e: Error) => { if (!gone) setError(e.message); });
    return () => { gone = true; };
  }, [project, runId, metricKey, xAxis, range]);

  useEffect(() => () => plot.current?.destroy(), []);

  return (
    <figure class="chart" aria-labelledby={titleId}>
      <figcaption id={titleId}><strong>{metricKey}</strong> <span class="help">{info}</span>
        {range && <button type="button" onClick={() => setRange(null)}>Reset zoom</button>}
      </figcaption>
      {error && <p class="error" role="alert">{error}</p>}
      <div ref={host} role="img" aria-label={`Chart of ${metricKey} by ${xAxis}; drag to zoom`} />
    </figure>
  );
}

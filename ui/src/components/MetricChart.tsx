// One metric key's chart (uPlot). It asks for as many points as the chart is wide; selecting a
// range with the mouse asks again for just that step range, downsampled to the same width, so a
// million-point series shows every spike at every zoom. Smoothing (a debiased EMA, as
// TensorBoard and W&B draw it) is applied in the page to the loaded points: the raw series stays
// behind it, faint, so the smoothing never hides a spike.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { api } from "../client";
import { ema, firstTime, relativeSeconds } from "../lib/smooth";
import type { History } from "../lib/types";
import { historyUrl, pointsFor, stepRange, stepsInTimeRange, toNumber, xBounds, type StepRange } from "../lib/zoom";

/** step; time (wall clock); relative (seconds since the series' first point). */
export type XAxis = "step" | "time" | "relative";

interface Props { project: string; runId: string; metricKey: string; xAxis: XAxis; smoothing?: number }

const WIDTH = 720;
const HEIGHT = 240;
const AXIS_LABEL: Record<XAxis, string> = { step: "step", time: "time", relative: "seconds since first point" };

export function MetricChart({ project, runId, metricKey, xAxis, smoothing = 0 }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const origin = useRef<number | null>(null); // the first point's time: relative axis' zero
  const [hist, setHist] = useState<History | null>(null);
  const [range, setRange] = useState<StepRange | null>(null);
  const [info, setInfo] = useState("");
  const [error, setError] = useState<string | null>(null);
  const titleId = `chart-${metricKey.replace(/[^A-Za-z0-9_-]/g, "_")}`;

  useEffect(() => {
    let gone = false;
    const url = historyUrl(project, runId, metricKey, pointsFor(WIDTH), range);
    api.get<History>(url).then((h) => {
      if (gone) return;
      if (range === null || origin.current === null) origin.current = firstTime(h.timestamps);
      setInfo(`${h.steps.length.toLocaleString("en")} of ${h.total.toLocaleString("en")} points` +
        (h.method === "full" ? "" : ` (${h.method})`) + (range ? `, steps ${range.min}–${range.max}` : ""));
      setError(null);
      setHist(h);
    }, (e: Error) => { if (!gone) setError(e.message); });
    return () => { gone = true; };
  }, [project, runId, metricKey, range]);

  useEffect(() => {
    const h = hist;
    if (!h || !host.current) return;
    const xs = xAxis === "time" ? h.timestamps
      : xAxis === "relative" ? relativeSeconds(h.timestamps, origin.current ?? 0) : h.steps;
    const raw = h.values.map((v) => toNumber(v));
    const smoothed = smoothing > 0 ? ema(raw, smoothing) : raw;
    const data: uPlot.AlignedData = smoothing > 0 ? [xs, raw, smoothed] : [xs, raw];
    const bounds = range ? xBounds(h.steps, xs, range) : null;
    const series: uPlot.Series[] = [{ label: AXIS_LABEL[xAxis] }];
    if (smoothing > 0) {
      series.push({ label: `${metricKey} (raw)`, stroke: "rgba(31, 95, 191, 0.25)", width: 1, points: { show: false } });
      series.push({ label: `${metricKey} (smoothed ${smoothing.toFixed(2)})`, stroke: "#1f5fbf", width: 2,
        points: { show: false } });
    } else {
      series.push({ label: metricKey, stroke: "#1f5fbf", width: 1.5, points: { show: false } });
    }
    plot.current?.destroy();
    plot.current = new uPlot({
      width: WIDTH, height: HEIGHT,
      // Zoomed: the x scale is the zoomed range (the answer holds only that range's points).
      scales: { x: { time: xAxis === "time", ...(bounds ? { range: (): uPlot.Range.MinMax => bounds } : {}) } },
      axes: [{ label: AXIS_LABEL[xAxis] }, {}],
      series,
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { show: true },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 2) return;
          const a = u.posToVal(u.select.left, "x");
          const b = u.posToVal(u.select.left + u.select.width, "x");
          const shift = xAxis === "relative" ? origin.current ?? 0 : 0;
          const next = xAxis === "step" ? stepRange(a, b) : stepsInTimeRange(h.steps, h.timestamps, a + shift, b + shift);
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          if (next) setRange(next);
        }],
      },
    }, data, host.current);
  }, [hist, xAxis, smoothing]);

  useEffect(() => () => plot.current?.destroy(), []);

  return (
    <figure class="chart" aria-labelledby={titleId} data-smoothing={smoothing.toFixed(2)}>
      <figcaption id={titleId}><strong>{metricKey}</strong> <span class="help">{info}</span>
        {range && <button type="button" onClick={() => setRange(null)}>Reset zoom</button>}
      </figcaption>
      {error && <p class="error" role="alert">{error}</p>}
      <div ref={host} role="img" aria-label={`Chart of ${metricKey} by ${AXIS_LABEL[xAxis]}` +
        `${smoothing > 0 ? `, smoothed ${smoothing.toFixed(2)}` : ""}; drag to zoom`} />
    </figure>
  );
}

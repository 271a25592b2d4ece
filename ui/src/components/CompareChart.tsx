// One metric key for N runs, overlaid (uPlot, one line per run). The metrics service answers the
// key for every run in one call (POST .../metrics/search), each run min-max downsampled to the
// chart's width, so spikes stay visible however long the runs are.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { api } from "../client";
import { seg } from "../lib/api";
import { alignSeries } from "../lib/compare";
import { pointsFor } from "../lib/zoom";

/** Line colours that keep 3:1 contrast on white and stay apart for common colour blindness. */
export const RUN_COLOURS = ["#0b57b5", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0f766e", "#a16207", "#334155"];

const WIDTH = 640;
const HEIGHT = 220;

interface SearchAnswer { runs: { run_id: string; steps: number[]; values: (number | string)[] }[] }
interface Props { project: string; metricKey: string; runIds: string[]; labels: string[] }

export function CompareChart({ project, metricKey, runIds, labels }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [error, setError] = useState<string | null>(null);
  const titleId = `cmp-${metricKey.replace(/[^A-Za-z0-9_-]/g, "_")}`;

  useEffect(() => {
    let gone = false;
    api.post<SearchAnswer>(`/api/v1/metrics/projects/${seg(project)}/metrics/search`,
      { key: metricKey, run_ids: runIds, points: pointsFor(WIDTH), method: "minmax", aggregate: false })
      .then((b) => {
        if (gone || !host.current) return;
        const data = alignSeries(b.runs) as uPlot.AlignedData;
        plot.current?.destroy();
        plot.current = new uPlot({
          width: WIDTH, height: HEIGHT,
          scales: { x: { time: false } },
          axes: [{ label: "step" }, {}],
          series: [{ label: "step" }, ...b.runs.map((_, i) => ({
            label: labels[i] ?? runIds[i], stroke: RUN_COLOURS[i % RUN_COLOURS.length], width: 1.5,
            spanGaps: true, points: { show: false },
          }))],
          legend: { show: true },
        }, data, host.current);
        setError(null);
      }, (e: Error) => { if (!gone) setError(e.message); });
    return () => { gone = true; };
  }, [project, metricKey, runIds.join(",")]);

  useEffect(() => () => plot.current?.destroy(), []);

  return (
    <figure class="chart" aria-labelledby={titleId}>
      <figcaption id={titleId}><strong>{metricKey}</strong></figcaption>
      {error && <p class="error" role="alert">{error}</p>}
      <div ref={host} role="img" aria-label={`Chart of ${metricKey} by step, one line per run: ${labels.join(", ")}`} />
    </figure>
  );
}

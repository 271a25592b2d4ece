// One monitoring chart of a deployment (uPlot, styled as the run page's MetricChart): x is the
// window's start time, one line per series. Redrawn whenever the windows change.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface Line { label: string; values: (number | null)[]; stroke: string }

interface Props { id: string; title: string; unit: string; t: number[]; lines: Line[]; note?: string }

const WIDTH = 560;
const HEIGHT = 200;

export function DeployChart({ id, title, unit, t, lines, note }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!host.current) return;
    plot.current?.destroy();
    plot.current = new uPlot({
      width: WIDTH, height: HEIGHT,
      scales: { x: { time: true } },
      axes: [{}, { label: unit }],
      series: [{ label: "window start" }, ...lines.map((l) => ({ label: l.label, stroke: l.stroke, width: 1.5, spanGaps: false }))],
      legend: { show: true },
    }, [t, ...lines.map((l) => l.values)] as uPlot.AlignedData, host.current);
  }, [t, lines]);
  useEffect(() => () => plot.current?.destroy(), []);
  const titleId = `deploy-chart-${id}`;
  return (
    <figure class="chart deploy-chart" aria-labelledby={titleId}>
      <figcaption id={titleId}><strong>{title}</strong> <span class="help">{note ?? `${t.length} windows`}</span></figcaption>
      <div ref={host} role="img" aria-label={`Chart of ${title} by window start time`} />
    </figure>
  );
}

// Time series charts with uPlot: one per metric, series per label set,
// a shared crosshair whose legend shows the values under the cursor.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { Aggregation, type Series } from "./gen/nightjar/v1/nightjar_pb";
import { incidents, query } from "./api";
import { bytes, h } from "./dom";

/** Tick steps for byte axes: whole binary units (1, 2, 4 … 512 KiB, MiB …). */
const BINARY_INCRS = [0, 1, 2, 3, 4, 5].flatMap((k) => [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((x) => x * 1024 ** k));
import { type Matcher, selector } from "./matchers";

/** A chart's question to the query API; kept on the element for tests. */
export interface ChartQuery {
  metrics: string[];
  matchers: Matcher[];
  startMs: number;
  endMs: number;
  stepMs: number;
  agg: keyof typeof Aggregation;
  /** Labels that tell the series of this chart apart. */
  by: string[];
}

export interface ChartSpec {
  title: string;
  /** One or more metrics of the same unit, drawn together. */
  metrics: string[];
  matchers: Matcher[];
  by: string[];
  unit?: (v: number) => string;
  agg?: keyof typeof Aggregation;
}

const PALETTE = ["#3b82f6", "#f97316", "#10b981", "#a855f7", "#ef4444", "#eab308", "#06b6d4", "#ec4899", "#84cc16", "#64748b"];

const SYNC = uPlot.sync("nightjar");
const MAX_SERIES = 20;

/** The rows of a query answer, aligned on one time axis for uPlot. */
export function align(series: Series[], by: string[], withMetric = false): { labels: string[]; data: uPlot.AlignedData } {
  const times = new Set<number>();
  for (const s of series) for (const p of s.points) times.add(Number(p.timestampMs));
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const labels: string[] = [];
  const ys: (number | null)[][] = [];
  for (const s of series) {
    const row: (number | null)[] = new Array(xs.length).fill(null);
    for (const p of s.points) row[index.get(Number(p.timestampMs))!] = p.value;
    ys.push(row);
    const names = by.map((k) => s.labels.find((l) => l.name === k)?.value ?? "").filter((v) => v);
    if (withMetric || names.length === 0) names.unshift(s.metric);
    labels.push(names.join(" "));
  }
  return { labels, data: [xs.map((t) => t / 1000), ...ys] as uPlot.AlignedData };
}

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A chart card: draws `spec` over [start, end] and can be redrawn. */
/** A change recorded in production, drawn as a dashed line on the chart. */
export interface Marker {
  atMs: number;
  label: string;
}

export class Chart {
  readonly el: HTMLElement;
  /** Changes to draw; set before `load`. */
  markers: Marker[] = [];
  private plot: uPlot | null = null;
  private body: HTMLElement;
  private note: HTMLElement;

  constructor(readonly spec: ChartSpec) {
    this.body = h("div", { class: "plot" });
    this.note = h("p", { class: "muted small" });
    this.el = h("section", { class: "card chart", "data-metrics": spec.metrics.join(" ") }, h("h3", {}, spec.title), this.body, this.note);
  }

  async load(startMs: number, endMs: number, stepMs: number) {
    const q: ChartQuery = {
      metrics: this.spec.metrics,
      matchers: this.spec.matchers,
      startMs,
      endMs,
      stepMs,
      agg: this.spec.agg ?? "AVG",
      by: this.spec.by,
    };
    // Several metrics in one question: `__name__` matches the metric name.
    const sel =
      q.metrics.length === 1
        ? selector(q.metrics[0], q.matchers)
        : selector("", [...q.matchers, { name: "__name__", op: "=~", value: q.metrics.join("|") }]);
    const answer = await query.queryRange({
      selector: sel,
      startMs: BigInt(startMs),
      endMs: BigInt(endMs),
      stepMs: BigInt(stepMs),
      aggregation: Aggregation[q.agg],
    });
    // In the order the chart lists its metrics.
    const order = (m: string) => q.metrics.indexOf(m);
    const all = [...answer.series].sort((a, b) => order(a.metric) - order(b.metric));
    const series = all.slice(0, MAX_SERIES);
    const { labels, data } = align(series, q.by, q.metrics.length > 1);
    this.el.dataset.query = JSON.stringify(q);
    this.el.dataset.points = String(data[0].length);
    this.note.textContent = series.length === 0 ? "No data in this range." : all.length > series.length ? `Showing ${series.length} of ${all.length} series.` : "";
    this.draw(labels, data, startMs, endMs);
  }

  /** The values drawn, per series label: what the tests compare. */
  drawn(): { labels: string[]; data: uPlot.AlignedData } | null {
    if (!this.plot) return null;
    return { labels: this.plot.series.slice(1).map((s) => String(s.label)), data: this.plot.data };
  }

  private draw(labels: string[], data: uPlot.AlignedData, startMs: number, endMs: number) {
    const fmt = this.spec.unit ?? ((v: number) => (Math.abs(v) >= 1000 ? v.toExponential(2) : String(Math.round(v * 100) / 100)));
    const width = Math.max(260, this.body.clientWidth || 400);
    const axis = { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") } };
    const opts: uPlot.Options = {
      width,
      height: 180,
      cursor: { sync: { key: SYNC.key } },
      legend: { live: true },
      // The whole range asked for, so an hour with data for ten minutes
      // looks like one.
      scales: { x: { time: true, range: [startMs / 1000, endMs / 1000] } },
      axes: [axis, { ...axis, size: 64, incrs: this.spec.unit === bytes ? BINARY_INCRS : undefined, values: (_u, vals) => vals.map((v) => (v == null ? "" : fmt(v))) }],
      series: [
        {},
        ...labels.map((label, i) => ({
          label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v == null ? "–" : fmt(v)),
        })),
      ],
    };
    const markers = this.markers.filter((m) => m.atMs >= startMs && m.atMs <= endMs);
    this.el.dataset.markers = String(markers.length);
    opts.hooks = {
      draw: [
        (u: uPlot) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = css("--warning") || "#f2a600";
          ctx.setLineDash([4, 3]);
          ctx.lineWidth = 1.5 * devicePixelRatio;
          for (const m of markers) {
            const x = u.valToPos(m.atMs / 1000, "x", true);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    };
    this.plot?.destroy();
    this.plot = new uPlot(opts, data, this.body);
    (this.el as unknown as { chart: Chart }).chart = this;
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: Math.max(260, this.body.clientWidth), height: 180 });
  }

  destroy() {
    this.plot?.destroy();
    this.plot = null;
  }
}

/**
 * The changes recorded for a host or service in [start, end] as chart
 * markers, and the line naming them under the charts. A failure leaves
 * the charts without markers, not without data.
 */
export async function changeMarkers(filter: { host?: string; service?: string }, startMs: number, endMs: number, line: HTMLElement): Promise<Marker[]> {
  const found = await incidents.listChanges({ fromMs: BigInt(startMs), toMs: BigInt(endMs + 1), host: filter.host ?? "", service: filter.service ?? "" }).catch(() => null);
  const changes = found?.changes ?? [];
  line.replaceChildren();
  if (changes.length) {
    line.append("Changes (dashed lines): ");
    changes.forEach((c, i) => line.append(i ? "; " : "", h("strong", {}, c.id), ` ${new Date(Number(c.atMs)).toLocaleString()} ${c.what} (${c.by})`));
  }
  return changes.map((c) => ({ atMs: Number(c.atMs), label: `${c.id} ${c.what}` }));
}

/** Ranges offered, each with the step that keeps about 200–400 points and
 * lets the collector answer from the right rollup tier (steps that are
 * whole minutes read minute summaries, whole hours hour summaries). */
export const RANGES: { name: string; ms: number; stepMs: number }[] = [
  { name: "15m", ms: 15 * 60e3, stepMs: 5e3 },
  { name: "1h", ms: 3600e3, stepMs: 15e3 },
  { name: "6h", ms: 6 * 3600e3, stepMs: 60e3 },
  { name: "24h", ms: 86400e3, stepMs: 300e3 },
  { name: "7d", ms: 7 * 86400e3, stepMs: 3600e3 },
  { name: "30d", ms: 30 * 86400e3, stepMs: 3 * 3600e3 },
];

// Capacity (docs/capacity.md): every host's filesystems, memory and swap
// and each declared limit, ranked by the time left, with the trend and R²;
// for the soonest, the readings and the fitted line projected to the
// threshold; and each service's business KPIs with their trend line.
import uPlot from "uplot";
import type { SeriesForecast } from "../gen/nightjar/v1/nightjar_pb";
import { Aggregation, MatchOp } from "../gen/nightjar/v1/nightjar_pb";
import { capacity, query } from "../api";
import { RANGES } from "../chart";
import { fill, h, num, when } from "../dom";
import type { Route } from "../main";

const DAY = 86400e3;
/** Charts drawn for the soonest resources. */
const CHARTS = 6;

/** The fitted curve at `t` (docs/capacity.md, "Method"). */
export function fitted(f: SeriesForecast, t: number): number {
  const days = (t - Number(f.originMs)) / DAY;
  switch (f.fit) {
    case "exponential":
      return f.a * Math.exp(f.b * days);
    case "logarithmic":
      return f.a + f.b * Math.log(days + 1);
    case "power":
      return f.a * Math.pow(days + 1, f.b);
    default:
      return f.a + f.b * days;
  }
}

function left(ms: number): string {
  const s = (ms - Date.now()) / 1000;
  if (s <= 0) return "now";
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function whenText(f: SeriesForecast): string {
  switch (f.crossing) {
    case "already":
      return "at or past its limit now";
    case "never":
      return "not in sight";
    case "crossing":
      return `in ${left(Number(f.etaMs))} (${when(Number(f.etaMs))}; ${left(Number(f.etaLowMs))} … ${Number(f.etaHighMs) ? left(Number(f.etaHighMs)) : "maybe never"})`;
    case "trend":
      return "trend";
    default:
      return `cannot fit: ${f.error}`;
  }
}

function label(f: SeriesForecast): string {
  const rest = f.labels.filter((l) => l.name !== "host").map((l) => `${l.name}=${l.value}`);
  return rest.length ? `${f.metric}{${rest.join(",")}}` : f.metric;
}

/** A chart of the readings, the fit projected to the threshold, and the threshold. */
async function trendChart(f: SeriesForecast, startMs: number, endMs: number, stepMs: number, signal: AbortSignal): Promise<HTMLElement> {
  const body = h("div", { class: "plot" });
  const crossing = f.crossing === "crossing" ? Number(f.etaMs) : 0;
  // Far enough to show the crossing, not so far that the data is a dot.
  const until = crossing ? Math.min(Math.max(crossing, endMs), endMs + 4 * (endMs - startMs)) : endMs;
  const el = h("section", { class: "card chart", "data-resource": f.resource || label(f), "data-host": f.host, "data-fit": f.fit, "data-eta": String(crossing) }, h("h3", {}, `${f.host} ${f.resource || label(f)}`), body, h("p", { class: "small muted" }, `${f.fit} fit, R² ${f.rSquared.toFixed(3)}, ${num(f.slopePerDay)}/day · ${whenText(f)}`));
  const answer = await query.queryRange(
    {
      selector: { metric: f.metric, matchers: f.labels.map((l) => ({ name: l.name, op: MatchOp.EQUAL, value: l.value })) },
      startMs: BigInt(startMs),
      endMs: BigInt(endMs),
      stepMs: BigInt(stepMs),
      aggregation: Aggregation.AVG,
    },
    { signal },
  );
  const points = answer.series[0]?.points ?? [];
  const xs: number[] = points.map((p) => Number(p.timestampMs));
  // The projection: a point per step to the crossing (at most 200 more).
  const extra = Math.max(1, Math.ceil((until - endMs) / 200));
  for (let t = endMs + extra; t <= until; t += extra) xs.push(t);
  if (crossing && xs[xs.length - 1] < crossing && crossing <= until) xs.push(crossing);
  const actual = xs.map((_, i) => (i < points.length ? points[i].value : null));
  const fit = xs.map((t) => (f.crossing === "error" ? null : fitted(f, t)));
  const limit = xs.map(() => (f.threshold ? f.threshold : null));
  const width = Math.max(260, body.clientWidth || 400);
  el.dataset.points = String(points.length);
  const opts: uPlot.Options = {
    width,
    height: 180,
    scales: { x: { time: true, range: [startMs / 1000, until / 1000] } },
    series: [
      {},
      { label: "reading", stroke: "#3b82f6", width: 2, points: { show: true, size: 4 } },
      { label: `${f.fit} fit`, stroke: "#f97316", width: 1.5, dash: [6, 4] },
      { label: "threshold", stroke: "#ef4444", width: 1 },
    ],
  };
  requestAnimationFrame(() => {
    if (!signal.aborted) new uPlot({ ...opts, width: Math.max(260, body.clientWidth || width) }, [xs.map((t) => t / 1000), actual, fit, limit] as uPlot.AlignedData, body);
  });
  return el;
}

export async function renderCapacity(main: HTMLElement, route: Route, signal: AbortSignal) {
  const range = RANGES.find((r) => r.name === route.params.get("range")) ?? RANGES[4];
  const end = Date.now();
  const start = end - range.ms;
  const report = await capacity.report({ fromMs: BigInt(start), toMs: BigInt(end) }, { signal });
  const rows = report.resources;
  const body = h(
    "tbody",
    {},
    rows.length
      ? rows.map((f) =>
          h(
            "tr",
            { "data-resource": f.resource, "data-host": f.host, "data-crossing": f.crossing, class: f.crossing === "already" ? "overdue" : "" },
            h("td", {}, h("a", { href: `#/host/${encodeURIComponent(f.host)}` }, f.host)),
            h("td", {}, f.resource),
            h("td", {}, num(f.lastValue)),
            h("td", {}, `${f.slopePerDay >= 0 ? "+" : ""}${num(f.slopePerDay)}/day`),
            h("td", { title: "how much of the movement the trend explains (1 = all)" }, f.rSquared.toFixed(2)),
            h("td", { class: "left" }, f.crossing === "crossing" ? left(Number(f.etaMs)) : f.crossing === "already" ? "full now" : "–"),
            h("td", { class: "small" }, whenText(f)),
          ),
        )
      : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No resource has data in this range.")),
  );
  const charts = h("div", { class: "charts" });
  const kpiCharts = h("div", { class: "charts" });
  fill(
    main,
    h("div", { class: "board-head" }, h("h1", {}, "Capacity"), h("nav", { class: "segmented", "aria-label": "Window fitted" }, RANGES.map((r) => h("a", { href: `#/capacity?range=${r.name}`, "aria-pressed": String(r === range) }, r.name)))),
    h("p", { class: "muted" }, `Least-squares trends over the last ${range.name}. R² below 0.5: the line explains little; do not plan on it.`),
    h("div", { class: "card scroll" }, h("table", { class: "table capacity" }, h("thead", {}, h("tr", {}, ["Host", "Resource", "Now", "Trend", "R²", "Left", "When"].map((t) => h("th", { scope: "col" }, t)))), body)),
    h("h2", {}, "Soonest to run out"),
    charts,
    report.kpis.length ? [h("h2", {}, "Services: business KPIs"), kpiCharts] : null,
    report.correlations.length
      ? h(
          "section",
          { class: "card" },
          h("h2", {}, "Volume vs KPI"),
          h(
            "ul",
            {},
            report.correlations.map((c) =>
              h(
                "li",
                { "data-correlation": c.name },
                h("strong", {}, c.name),
                c.service ? ` (${c.service})` : "",
                ": ",
                c.result
                  ? [`R² ${c.result.rSquared.toFixed(2)}, +1 % volume → ${c.result.elasticityPercent >= 0 ? "+" : ""}${c.result.elasticityPercent.toFixed(2)} % ${c.kpi}`, c.result.hasWhatIf ? `; at ${num(c.result.whatIfVolume)} ${c.volume}: ${num(c.result.whatIfKpi)}` : "", c.result.hasSla ? (c.result.withinSla ? ` — within the SLA of ${c.result.sla}` : h("strong", { class: "error" }, ` — over the SLA of ${c.result.sla}`)) : ""]
                  : h("span", { class: "muted" }, `cannot fit: ${c.error}`),
              ),
            ),
          ),
        )
      : null,
  );
  const soonest = rows.filter((f) => f.crossing === "crossing" || f.crossing === "already").slice(0, CHARTS);
  // Short windows are fitted on raw points (as the collector does): draw those.
  const step = range.ms <= 3600e3 ? 0 : range.stepMs;
  charts.append(...(await Promise.all(soonest.map((f) => trendChart(f, start, end, step, signal)))));
  if (!soonest.length) charts.append(h("p", { class: "muted" }, "Nothing runs out on this window's trends."));
  const kpis = report.kpis.flatMap((k) => k.series.map((s) => ({ ...s, resource: `${k.service}: ${k.component}` }) as SeriesForecast));
  kpiCharts.append(...(await Promise.all(kpis.slice(0, CHARTS).map((f) => trendChart(f, start, end, step, signal)))));
  main.dataset.ready = "true";
}

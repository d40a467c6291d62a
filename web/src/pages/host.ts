// One host: its alerts and charts of every reading, over 15 minutes to 30
// days (the step, and so the rollup tier, follows the range), refreshed
// while it is shown.
import { alerts, follow, query } from "../api";
import { Chart, type ChartSpec, RANGES, changeMarkers } from "../chart";
import { ago, bytes, fill, h, num, when } from "../dom";
import { alertState, badge, worst } from "../health";
import type { Matcher } from "../matchers";
import { AlertSet, label } from "../state";
import type { Route } from "../main";

const pct = (v: number) => `${num(v)}%`;
const rate = (v: number) => `${num(v)}/s`;
const bps = (v: number) => `${bytes(v)}/s`;

function specs(host: Matcher): ChartSpec[] {
  const m = (...more: Matcher[]) => [host, ...more];
  return [
    { title: "CPU by mode (all CPUs)", metrics: ["cpu_mode_percent"], matchers: m({ name: "cpu", op: "=", value: "total" }, { name: "mode", op: "!=", value: "idle" }), by: ["mode"], unit: pct },
    { title: "Load average", metrics: ["load_average"], matchers: m(), by: ["period"] },
    { title: "Memory", metrics: ["memory_used_bytes", "memory_cached_bytes", "memory_buffers_bytes", "memory_available_bytes"], matchers: m(), by: [], unit: bytes },
    { title: "Swap used", metrics: ["swap_used_bytes"], matchers: m(), by: [], unit: bytes },
    { title: "Swap in / out (pages)", metrics: ["swap_in_pages_per_second", "swap_out_pages_per_second"], matchers: m(), by: [], unit: rate },
    { title: "Filesystems used", metrics: ["disk_used_percent"], matchers: m(), by: ["mountpoint"], unit: pct },
    { title: "Disk I/O", metrics: ["diskio_read_bytes_per_second", "diskio_write_bytes_per_second"], matchers: m(), by: ["device"], unit: bps },
    { title: "Disk utilisation", metrics: ["diskio_util_percent"], matchers: m(), by: ["device"], unit: pct },
    { title: "Network", metrics: ["net_rx_bytes_per_second", "net_tx_bytes_per_second"], matchers: m(), by: ["interface"], unit: bps },
    { title: "Network errors and drops", metrics: ["net_rx_errors_per_second", "net_tx_errors_per_second", "net_rx_drops_per_second", "net_tx_drops_per_second"], matchers: m(), by: ["interface"], unit: rate },
    { title: "TCP connections", metrics: ["tcp_established_connections"], matchers: m(), by: [] },
    { title: "TCP retransmits and listen overflows", metrics: ["tcp_retransmits_per_second", "tcp_listen_overflows_per_second"], matchers: m(), by: [], unit: rate },
    { title: "Watched processes: CPU", metrics: ["process_cpu_percent"], matchers: m(), by: ["process"], unit: pct },
    { title: "Watched processes: memory", metrics: ["process_rss_bytes"], matchers: m(), by: ["process"], unit: bytes },
  ];
}

export async function renderHost(main: HTMLElement, route: Route, signal: AbortSignal) {
  const name = route.arg;
  const range = RANGES.find((r) => r.name === route.params.get("range")) ?? RANGES[1];
  // The charts ask at once, beside the host and its alerts.
  const charts = specs({ name: "host", op: "=", value: name }).map((s) => new Chart(s));
  const alertBox = h("section", { class: "card", "aria-labelledby": "host-alerts" }, h("h2", { id: "host-alerts" }, "Alerts"));
  const title = h("h1", {}, name);
  const about = h("p", { class: "muted" });
  const changesLine = h("p", { class: "small chart-changes", "data-changes": "" });
  // The page first, so the charts know their width; then every question
  // at once: the charts' beside the host's and its alerts'.
  fill(
    main,
    h("p", {}, h("a", { href: "#/" }, "← Board")),
    h("div", { class: "board-head" }, title, h("nav", { class: "segmented", "aria-label": "Time range" }, RANGES.map((r) => h("a", { href: `#/host/${encodeURIComponent(name)}?range=${r.name}`, "aria-pressed": String(r === range) }, r.name)))),
    about,
    alertBox,
    changesLine,
    h("div", { class: "charts" }, charts.map((c) => c.el)),
  );
  const load = async () => {
    const end = Date.now();
    const markers = await changeMarkers({ host: name }, end - range.ms, end, changesLine);
    charts.forEach((c) => (c.markers = markers));
    await Promise.all(charts.map((c) => c.load(end - range.ms, end, range.stepMs)));
  };
  const loaded = load();
  const [hostList, active] = await Promise.all([query.listHosts({}, { signal }), alerts.listAlerts({}, { signal })]);
  const info = hostList.hosts.find((x) => x.host === name);
  const set = new AlertSet(active.alerts);
  about.textContent = info ? `Last data ${ago(Number(info.lastSeenMs))}, every ${Number(info.intervalMs) / 1000} s, ${info.seriesCount} series.` : "The collector has no data from this host.";
  const drawAlerts = () => {
    const mine = [...set.byId.values()].filter((a) => label(a, "host") === name);
    const state = worst(mine.map((a) => alertState(a.state, a.severity)));
    fill(title, name, " ", badge(state));
    title.dataset.state = state;
    fill(
      alertBox,
      h("h2", { id: "host-alerts" }, "Alerts"),
      mine.length
        ? h("ul", { class: "components" }, mine.map((a) => h("li", {}, badge(alertState(a.state, a.severity)), " ", h("a", { href: `#/alerts?q=${encodeURIComponent(a.id)}` }, a.rule), ` ${a.series} = ${num(a.value)} (${a.state}${a.startedMs ? ` since ${when(Number(a.startedMs))}` : ""})`)))
        : h("p", { class: "muted" }, "Nothing is firing on this host."),
    );
  };
  drawAlerts();
  await loaded;
  main.dataset.ready = "true";
  // Live: short ranges slide with the clock, long ones at their step.
  const every = Math.max(5000, Math.min(range.stepMs, 60000));
  const timer = setInterval(() => load().catch(() => {}), every);
  const resize = () => charts.forEach((c) => c.resize());
  window.addEventListener("resize", resize);
  signal.addEventListener("abort", () => {
    clearInterval(timer);
    window.removeEventListener("resize", resize);
    charts.forEach((c) => c.destroy());
  });
  follow(
    (s) => alerts.watchAlerts({}, { signal: s }),
    (ev) => {
      if (set.apply(ev) === name) drawAlerts();
    },
    signal,
  ).catch(() => {});
}

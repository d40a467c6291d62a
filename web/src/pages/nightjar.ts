// Nightjar itself: is the monitoring working? Agents' last contact and
// spool backlogs, the collector's ingest, refusals and outbox backlog.
import { create } from "@bufbuild/protobuf";
import { SelectorSchema } from "../gen/nightjar/v1/nightjar_pb";
import { query } from "../api";
import { Chart, RANGES } from "../chart";
import { ago, bytes, fill, h, num } from "../dom";
import { badge } from "../health";
import { label } from "../state";
import type { Route } from "../main";

async function latest(metric: string, signal: AbortSignal) {
  const answer = await query.latest({ selector: create(SelectorSchema, { metric }) }, { signal });
  return answer.series.map((s) => ({ labels: s.labels, value: s.points[0]?.value ?? NaN }));
}

const sum = (rows: { value: number }[]) => rows.reduce((a, r) => a + (Number.isFinite(r.value) ? r.value : 0), 0);

export async function renderNightjar(main: HTMLElement, _route: Route, signal: AbortSignal) {
  const [hosts, spoolBatches, spoolBytes, stored, rejected, refused, queued, writeFailures, storeFailures] = await Promise.all([
    query.listHosts({}, { signal }),
    latest("agent_spool_batches", signal),
    latest("agent_spool_bytes", signal),
    latest("collector_samples_stored_per_second", signal),
    latest("collector_samples_rejected_total", signal),
    latest("collector_batches_refused_total", signal),
    latest("collector_notifications_queued", signal),
    latest("collector_storage_write_failures_total", signal),
    latest("collector_alert_store_write_failures_total", signal),
  ]);
  const now = Date.now();
  const spool = new Map<string, { batches?: number; bytes?: number }>();
  for (const r of spoolBatches) spool.set(label(r, "host") ?? "", { ...spool.get(label(r, "host") ?? ""), batches: r.value });
  for (const r of spoolBytes) spool.set(label(r, "host") ?? "", { ...spool.get(label(r, "host") ?? ""), bytes: r.value });

  const figure = (name: string, value: string, id: string, bad = false) => h("div", { class: `figure${bad ? " s-warning" : ""}`, "data-figure": id }, h("span", { class: "figure-value" }, value), h("span", { class: "small muted" }, name));
  const rejectedByReason = rejected.filter((r) => r.value > 0).map((r) => `${label(r, "reason") ?? "?"}: ${r.value}`);
  const agents = [...hosts.hosts].sort((a, b) => Number(a.lastSeenMs - b.lastSeenMs));
  const ingest = new Chart({ title: "Samples stored per second", metrics: ["collector_samples_stored_per_second"], matchers: [], by: ["host"] });
  const backlog = new Chart({ title: "Outbox backlog (notifications queued)", metrics: ["collector_notifications_queued"], matchers: [], by: ["host"] });

  fill(
    main,
    h("h1", {}, "Nightjar itself"),
    h(
      "div",
      { class: "figures" },
      figure("samples stored / s", num(sum(stored)), "ingest"),
      figure("samples rejected (since start)", num(sum(rejected)), "rejected", sum(rejected) > 0),
      figure("batches refused (since start)", num(sum(refused)), "refused", sum(refused) > 0),
      figure("notifications waiting in the outbox", num(sum(queued)), "outbox", sum(queued) > 0),
      figure("storage write failures", num(sum(writeFailures) + sum(storeFailures)), "write-failures", sum(writeFailures) + sum(storeFailures) > 0),
      figure("agents", String(agents.length), "agents"),
    ),
    rejectedByReason.length ? h("p", { class: "small" }, "Rejected by reason: ", rejectedByReason.join(", ")) : null,
    h("div", { class: "charts" }, ingest.el, backlog.el),
    h(
      "section",
      { class: "card scroll" },
      h("h2", {}, "Agents"),
      h(
        "table",
        { class: "table" },
        h("thead", {}, h("tr", {}, ["Host", "Last contact", "Interval", "Series", "Spool backlog"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          agents.map((x) => {
            const seen = Number(x.lastSeenMs);
            const interval = Number(x.intervalMs) || 10000;
            const late = now - seen > 3 * interval + 5000;
            const s = spool.get(x.host);
            return h(
              "tr",
              { "data-agent": x.host },
              h("td", {}, h("a", { href: `#/host/${encodeURIComponent(x.host)}` }, x.host)),
              h("td", {}, late ? badge("warning", ago(seen, now)) : ago(seen, now)),
              h("td", {}, `${interval / 1000} s`),
              h("td", {}, String(x.seriesCount)),
              h("td", {}, s ? `${num(s.batches)} batches, ${bytes(s.bytes)}` : "–"),
            );
          }),
        ),
      ),
    ),
  );
  const range = RANGES[1];
  const end = Date.now();
  await Promise.all([ingest.load(end - range.ms, end, range.stepMs), backlog.load(end - range.ms, end, range.stepMs)]);
  main.dataset.ready = "true";
  // Refresh by drawing the page again: each drawing schedules the next.
  const timer = setTimeout(() => {
    ingest.destroy();
    backlog.destroy();
    if (!signal.aborted) renderNightjar(main, _route, signal).catch(() => {});
  }, 30000);
  signal.addEventListener("abort", () => {
    clearTimeout(timer);
    ingest.destroy();
    backlog.destroy();
  });
}

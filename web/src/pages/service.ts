// One service: its stack (business on top, machine at the bottom), each
// component's state and the alerts behind it, the services it depends on,
// who to call, and charts of its business metrics.
import type { Alert, ComponentStatus, HostInfo, ServiceStatus } from "../gen/nightjar/v1/nightjar_pb";
import { MatchOp } from "../gen/nightjar/v1/nightjar_pb";
import { alerts, board, follow, query } from "../api";
import { Chart, RANGES, changeMarkers } from "../chart";
import { fill, h, num, when } from "../dom";
import { alertState, badge, stateOf } from "../health";
import { type Matcher, matches } from "../matchers";
import type { Route } from "../main";
import { availabilitySection } from "./availability";

const LAYERS = [
  ["business", "Business: transactions and their SLAs"],
  ["application", "Application: processes, units, smoke tests"],
  ["machine", "Machine: CPU, memory, disk, network"],
] as const;

const OPS: Record<number, Matcher["op"]> = { [MatchOp.EQUAL]: "=", [MatchOp.NOT_EQUAL]: "!=", [MatchOp.REGEX]: "=~", [MatchOp.NOT_REGEX]: "!~" };

export function matchersOf(c: ComponentStatus): Matcher[] {
  return (c.series?.matchers ?? []).map((m) => ({ name: m.name, op: OPS[m.op] ?? "=", value: m.value }));
}

export async function renderService(main: HTMLElement, route: Route, signal: AbortSignal) {
  const [list, active, hostList] = await Promise.all([board.listServices({}, { signal }), alerts.listAlerts({}, { signal }), query.listHosts({}, { signal })]);
  let svc = list.services.find((s) => s.name === route.arg);
  if (!svc) {
    fill(main, h("h1", {}, "No such service"), h("p", {}, `No service is named "${route.arg}". `, h("a", { href: "#/" }, "Back to the board")));
    return;
  }
  const byId = new Map(active.alerts.map((a) => [a.id, a]));
  const head = h("div", { class: "board-head" });
  const stack = h("div", { class: "stack" });
  const charts = h("div", { class: "charts" });
  const chartList: Chart[] = [];

  const draw = (s: ServiceStatus) => {
    fill(
      head,
      h("h1", {}, s.name, " ", badge(stateOf(s.health))),
      h("p", { class: "muted" }, [s.description, s.team && `team ${s.team}`, s.weight !== 1 && `weight ${s.weight}`].filter(Boolean).join(" · ")),
    );
    head.dataset.state = stateOf(s.health);
    fill(
      stack,
      LAYERS.map(([layer, title]) => {
        const comps = s.components.filter((c) => c.layer === layer);
        if (!comps.length) return null;
        return h("section", { class: "card layer", "data-layer": layer }, h("h2", {}, title), h("ul", { class: "components" }, comps.map((c) => component(c, byId, hostList.hosts))));
      }),
      s.dependencies.length
        ? h("section", { class: "card" }, h("h2", {}, "Depends on"), h("ul", { class: "components" }, s.dependencies.map((d) => h("li", {}, badge(stateOf(d.health)), " ", h("a", { href: `#/service/${encodeURIComponent(d.service)}` }, d.service)))))
        : null,
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Contacts, in escalation order"),
        s.contacts.length
          ? h(
              "table",
              { class: "table" },
              h("thead", {}, h("tr", {}, ["Team", "Hours", "Phone", "E-mail", "Chat"].map((t) => h("th", { scope: "col" }, t)))),
              h(
                "tbody",
                {},
                s.contacts.map((c) =>
                  h("tr", {}, h("td", {}, c.team), h("td", {}, c.hours), h("td", {}, c.phone ? h("a", { href: `tel:${c.phone.replace(/\s/g, "")}` }, c.phone) : ""), h("td", {}, c.email ? h("a", { href: `mailto:${c.email}` }, c.email) : ""), h("td", {}, c.chat)),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No contacts are declared for this service."),
      ),
    );
  };

  const days = route.params.get("days") === "90" ? 90 : 30;
  const changesLine = h("p", { class: "small chart-changes", "data-changes": "" });
  fill(main, h("p", {}, h("a", { href: "#/" }, "← Board")), head, availabilitySection(svc.name, days, signal), stack, h("h2", {}, "Business metrics, last hour"), changesLine, charts);
  draw(svc);

  const range = RANGES[1];
  const business = svc.components.filter((c) => c.layer === "business" && c.series?.metric);
  for (const c of business) {
    const chart = new Chart({ title: `${c.name} (${c.selector})`, metrics: [c.series!.metric], matchers: matchersOf(c), by: ["host"], agg: "P99" });
    chartList.push(chart);
    charts.append(chart.el);
  }
  if (!business.length) charts.append(h("p", { class: "muted" }, "This service declares no business metrics."));
  const loadCharts = async () => {
    const end = Date.now();
    const markers = await changeMarkers({ service: route.arg }, end - range.ms, end, changesLine);
    chartList.forEach((c) => (c.markers = markers));
    await Promise.all(
      chartList.map(async (chart) => {
        await chart.load(end - range.ms, end, range.stepMs);
        // A percentile asks for a histogram; a plain series answers its mean.
        if (chart.el.dataset.points === "0") {
          chart.spec.agg = "AVG";
          await chart.load(end - range.ms, end, range.stepMs);
        }
      }),
    );
  };
  await loadCharts();
  main.dataset.ready = "true";
  const timer = setInterval(() => loadCharts().catch(() => {}), 15000);
  signal.addEventListener("abort", () => {
    clearInterval(timer);
    chartList.forEach((c) => c.destroy());
  });

  follow(
    (s) => board.watchServices({}, { signal: s }),
    async (ev) => {
      if (ev.service?.name !== route.arg) return;
      svc = ev.service;
      const fresh = await alerts.listAlerts({}, { signal });
      byId.clear();
      for (const a of fresh.alerts) byId.set(a.id, a);
      draw(svc);
    },
    signal,
  ).catch(() => {});
}

function component(c: ComponentStatus, byId: Map<string, Alert>, hosts: HostInfo[]): HTMLElement {
  const state = stateOf(c.health);
  const matchers = matchersOf(c);
  const hostMatchers = matchers.filter((m) => m.name === "host");
  const its = c.layer === "machine" && hostMatchers.length ? hosts.filter((x) => hostMatchers.every((m) => matches(m, x.host))) : [];
  const behind = c.alertIds.map((id) => byId.get(id)).filter((a): a is Alert => !!a);
  return h(
    "li",
    { class: `component s-${state}`, "data-component": c.name, "data-state": state },
    h("div", { class: "row" }, badge(state), h("strong", {}, c.name), h("code", { class: "small" }, c.selector)),
    c.reason ? h("p", { class: "small" }, c.reason) : null,
    behind.length
      ? h(
          "ul",
          { class: "alerts-behind" },
          behind.map((a) => h("li", {}, badge(alertState(a.state, a.severity)), " ", h("a", { href: `#/alerts?q=${encodeURIComponent(a.id)}` }, `${a.rule}`), ` ${a.series} = ${num(a.value)}`, a.startedMs ? ` since ${when(Number(a.startedMs))}` : "", a.ackedBy ? ` · acked by ${a.ackedBy}` : "")),
        )
      : null,
    its.length ? h("p", { class: "small host-links" }, "Hosts: ", its.map((x, i) => [i ? ", " : "", h("a", { href: `#/host/${encodeURIComponent(x.host)}` }, x.host)])) : null,
  );
}

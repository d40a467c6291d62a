// The board: a tile per service in its colour, word and icon, counts per
// state, what changed in the last hour, and a grid of hosts. Live through
// the WatchServices and WatchAlerts streams (no polling of states).
import { create } from "@bufbuild/protobuf";
import { type AlertEvent, type HistoryEntry, type HostInfo, type ServiceEvent, type ServiceStatus, SelectorSchema, MatchOp } from "../gen/nightjar/v1/nightjar_pb";
import { alerts, board, follow, incidents, query } from "../api";
import { ago, fill, h, num, when } from "../dom";
import { badge, rank, type State, stateOf, worst } from "../health";
import { AlertSet, label } from "../state";
import type { Route } from "../main";

/** Host tiles drawn before the first frame (more than a screenful). */
const FIRST_HOSTS = 120;

const FEED_KINDS = new Set(["fired", "resolved", "escalated", "deescalated", "flapping", "stable", "acknowledged", "silence_added", "silence_expired"]);
const LAYERS = ["business", "application", "machine"] as const;

interface Readings {
  cpu?: number;
  mem?: number;
  disk?: number;
  load?: number;
}

export async function renderBoard(main: HTMLElement, route: Route, signal: AbortSignal) {
  const groupBy = route.params.get("by") === "layer" ? "layer" : "team";
  const since = Date.now() - 3600e3;
  const readings = new Map<string, Readings>();
  // Everything the first drawing needs, asked at once (readings included,
  // so the host grid is drawn once, not twice).
  const [list, active, history, hostList] = await Promise.all([
    board.listServices({}, { signal }),
    alerts.listAlerts({}, { signal }),
    alerts.alertHistory({ sinceMs: BigInt(since), limit: 200 }, { signal }),
    query.listHosts({}, { signal }),
    loadReadings(readings, signal),
  ]);
  performance.mark("board:data");
  const services = new Map<string, ServiceStatus>(list.services.map((s) => [s.name, s]));
  const set = new AlertSet(active.alerts);
  const hosts = hostList.hosts;

  const counts = h("p", { class: "counts", "aria-live": "polite" });
  // Open incidents: one line each, the way into running them.
  const openIncidents = h("p", { class: "incidents-strip", "aria-live": "polite" });
  const tiles = h("div", { class: "groups" });
  const feed = h("ol", { class: "feed", "aria-label": "What changed in the last hour" });
  const hostFilter = h("input", { type: "search", placeholder: "Filter hosts (/)", "aria-label": "Filter hosts" });
  const hostGrid = h("div", { class: "hosts", role: "list" });

  fill(
    main,
    h(
      "div",
      { class: "board-head" },
      h("h1", {}, "Services"),
      h(
        "div",
        { class: "segmented", role: "group", "aria-label": "Group by" },
        h("a", { href: "#/?by=team", "aria-pressed": String(groupBy === "team") }, "By team"),
        h("a", { href: "#/?by=layer", "aria-pressed": String(groupBy === "layer") }, "By layer"),
      ),
    ),
    counts,
    openIncidents,
    tiles,
    h("div", { class: "board-lower" }, h("section", { class: "card", "aria-labelledby": "hosts-h" }, h("div", { class: "row" }, h("h2", { id: "hosts-h" }, `Hosts`), hostFilter), hostGrid), h("section", { class: "card feed-card", "aria-labelledby": "feed-h" }, h("h2", { id: "feed-h" }, "Last hour"), feed)),
  );

  const drawServices = () => {
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.service;
    drawServiceTiles();
    if (focused) tiles.querySelector<HTMLElement>(`[data-service="${CSS.escape(focused)}"]`)?.focus();
  };
  const drawServiceTiles = () => {
    const all = [...services.values()];
    const byState = new Map<State, number>();
    for (const s of all) byState.set(stateOf(s.health), (byState.get(stateOf(s.health)) ?? 0) + 1);
    fill(
      counts,
      (["critical", "warning", "unknown", "ok"] as State[]).map((s) => h("span", { class: `count s-${s}`, "data-count": s }, badge(s, `${byState.get(s) ?? 0}`))),
    );
    if (all.length === 0) {
      fill(tiles, h("p", { class: "muted" }, "No services are declared. Add service files to the collector's configuration (docs/services.md)."));
      return;
    }
    if (groupBy === "team") {
      const teams = new Map<string, ServiceStatus[]>();
      for (const s of all) teams.set(s.team || "no team", [...(teams.get(s.team || "no team") ?? []), s]);
      fill(
        tiles,
        [...teams].map(([team, list]) => h("section", { class: "group" }, h("h2", {}, team), h("div", { class: "tiles" }, list.map((s) => tile(s, stateOf(s.health), reasonOf(s)))))),
      );
    } else {
      fill(
        tiles,
        LAYERS.map((layer) => {
          const inLayer = all.filter((s) => s.components.some((c) => c.layer === layer));
          if (inLayer.length === 0) return null;
          return h(
            "section",
            { class: "group" },
            h("h2", {}, layer),
            h(
              "div",
              { class: "tiles" },
              inLayer.map((s) => {
                const comps = s.components.filter((c) => c.layer === layer);
                const state = worst(comps.map((c) => stateOf(c.health)));
                const why = comps.find((c) => stateOf(c.health) === state)?.reason ?? "";
                return tile(s, state, why);
              }),
            ),
          );
        }),
      );
    }
  };

  const drawHosts = () => {
    const states = set.hosts();
    const filter = hostFilter.value.trim().toLowerCase();
    const shown = hosts
      .filter((x) => !filter || x.host.toLowerCase().includes(filter))
      .map((x) => ({ info: x, state: states.get(x.host) ?? "ok" }))
      .sort((a, b) => rank(b.state) - rank(a.state) || a.info.host.localeCompare(b.info.host));
    if (!shown.length) {
      fill(hostGrid, h("p", { class: "muted" }, hosts.length ? "No host matches." : "No host has sent data yet."));
      return;
    }
    // The worst hosts first, at once; the rest in slices after the first
    // frame, so a thousand hosts do not hold up the board.
    const drawing = ++hostDrawing;
    fill(hostGrid, shown.slice(0, FIRST_HOSTS).map(({ info, state }) => hostTile(info, state, readings.get(info.host))));
    const more = (from: number) => {
      if (drawing !== hostDrawing || from >= shown.length || signal.aborted) return;
      const slice = document.createDocumentFragment();
      for (const { info, state } of shown.slice(from, from + FIRST_HOSTS * 2)) slice.append(hostTile(info, state, readings.get(info.host)));
      hostGrid.append(slice);
      setTimeout(() => more(from + FIRST_HOSTS * 2), 0);
    };
    requestAnimationFrame(() => setTimeout(() => more(FIRST_HOSTS), 0));
  };
  let hostDrawing = 0;
  hostFilter.addEventListener("input", drawHosts);

  const feedLine = (at: number, state: State | null, text: string, href?: string) =>
    h("li", {}, h("time", { datetime: new Date(at).toISOString() }, when(at)), " ", state ? badge(state) : null, " ", href ? h("a", { href }, text) : text);
  const entries = history.entries.filter((e) => FEED_KINDS.has(e.kind));
  fill(feed, entries.length ? entries.map((e) => historyLine(e, feedLine)) : h("li", { class: "muted empty" }, "Nothing changed in the last hour."));
  const prepend = (li: HTMLElement) => {
    feed.querySelector(".empty")?.remove();
    feed.prepend(li);
    while (feed.children.length > 200) feed.lastElementChild?.remove();
  };

  drawServices();
  drawHosts();
  performance.mark("board:drawn");

  // After the first paint: the open incidents, again whenever an alert changes.
  let incidentsDue: ReturnType<typeof setTimeout> | null = null;
  const loadIncidents = async () => {
    const open = (await incidents.listIncidents({ openOnly: true, limit: 20 }, { signal })).incidents;
    openIncidents.dataset.openIncidents = String(open.length);
    fill(
      openIncidents,
      open.length
        ? [
            h("strong", {}, `${open.length} open incident${open.length === 1 ? "" : "s"}: `),
            open.map((i, k) => [k ? " · " : "", h("a", { href: `#/incident/${i.id}`, class: i.severity === "critical" ? "error" : "" }, `${i.id} ${i.title}`), i.ackedBy ? "" : h("span", { class: "error" }, " (not acknowledged)")]),
            " ",
            h("a", { href: "#/incidents", class: "small" }, "all incidents"),
          ]
        : null,
    );
  };
  const incidentsSoon = () => {
    incidentsDue ??= setTimeout(() => {
      incidentsDue = null;
      if (!signal.aborted) loadIncidents().catch(() => {});
    }, 1000);
  };
  signal.addEventListener("abort", () => incidentsDue && clearTimeout(incidentsDue));
  loadIncidents().catch(() => {});

  main.dataset.ready = "true";
  // The first frame with the board in it (what bench/dashboard times).
  requestAnimationFrame(() => setTimeout(() => performance.mark("board:painted"), 0));

  const timer = setInterval(() => {
    const fresh = new Map<string, Readings>();
    loadReadings(fresh, signal)
      .then(() => {
        readings.clear();
        fresh.forEach((v, k) => readings.set(k, v));
        drawHosts();
      })
      .catch(() => {});
  }, 15000);
  signal.addEventListener("abort", () => clearInterval(timer));

  follow(
    (s) => board.watchServices({}, { signal: s }),
    (ev: ServiceEvent) => {
      const svc = ev.service;
      if (!svc) return;
      const before = services.get(svc.name);
      services.set(svc.name, svc);
      if (before && before.health !== svc.health) {
        prepend(feedLine(Number(ev.atMs), stateOf(svc.health), `${svc.name}: ${stateOf(before.health)} → ${stateOf(svc.health)}`, `#/service/${encodeURIComponent(svc.name)}`));
      }
      drawServices();
    },
    signal,
  ).catch(() => {});
  follow(
    (s) => alerts.watchAlerts({}, { signal: s }),
    (ev: AlertEvent) => {
      set.apply(ev);
      incidentsSoon();
      if (FEED_KINDS.has(ev.kind) && ev.alert) {
        const a = ev.alert;
        prepend(feedLine(Number(ev.atMs), ev.kind === "resolved" ? "ok" : null, `${a.rule} ${ev.kind}: ${a.series}`, "#/alerts"));
      }
      drawHosts();
    },
    signal,
    async () => {
      const fresh = await alerts.listAlerts({}, { signal });
      set.byId.clear();
      for (const a of fresh.alerts) set.byId.set(a.id, a);
      drawHosts();
    },
  ).catch(() => {});
}

/** The headline readings of every host: four Latest calls in all. */
async function loadReadings(readings: Map<string, Readings>, signal: AbortSignal) {
  const latest = async (metric: string, key: keyof Readings, extra: [string, string][] = [], reduce = (_a: number, b: number) => b) => {
    const sel = create(SelectorSchema, { metric, matchers: extra.map(([name, value]) => ({ name, op: MatchOp.EQUAL, value })) });
    const answer = await query.latest({ selector: sel }, { signal });
    for (const s of answer.series) {
      const host = label(s, "host");
      const v = s.points[0]?.value;
      if (!host || v === undefined) continue;
      const r = readings.get(host) ?? {};
      r[key] = r[key] === undefined ? v : reduce(r[key]!, v);
      readings.set(host, r);
    }
  };
  await Promise.all([
    latest("cpu_usage_percent", "cpu", [["cpu", "total"]]),
    latest("memory_used_percent", "mem"),
    latest("disk_used_percent", "disk", [], Math.max),
    latest("load_average", "load", [["period", "1m"]]),
  ]);
}

const pct = (v: number | undefined) => (v === undefined ? "–" : `${num(v)}%`);

function reasonOf(s: ServiceStatus): string {
  const state = stateOf(s.health);
  const comp = s.components.find((c) => stateOf(c.health) === state);
  if (comp) return `${comp.name}: ${comp.reason}`;
  const dep = s.dependencies.find((d) => stateOf(d.health) === state);
  return dep ? `depends on ${dep.service}` : "";
}

function tile(s: ServiceStatus, state: State, why: string): HTMLElement {
  return h(
    "a",
    { class: `tile s-${state}`, href: `#/service/${encodeURIComponent(s.name)}`, "data-service": s.name, "data-state": state },
    h("span", { class: "tile-name" }, s.name),
    badge(state),
    s.description ? h("span", { class: "muted small" }, s.description) : null,
    why && state !== "ok" ? h("span", { class: "small why" }, why) : null,
  );
}

function hostTile(info: HostInfo, state: State, r: Readings | undefined): HTMLElement {
  const seen = Number(info.lastSeenMs);
  return h(
    "a",
    { class: `host s-${state}`, href: `#/host/${encodeURIComponent(info.host)}`, role: "listitem", "data-host": info.host, "data-state": state, title: `last data ${ago(seen)}` },
    h("span", { class: "host-name" }, badge(state), " ", info.host),
    h("span", { class: "readings small" }, `CPU ${pct(r?.cpu)} · mem ${pct(r?.mem)} · disk ${pct(r?.disk)} · load ${num(r?.load)}`),
  );
}

function historyLine(e: HistoryEntry, line: (at: number, state: State | null, text: string, href?: string) => HTMLElement): HTMLElement {
  const state: State | null = e.kind === "resolved" ? "ok" : e.kind === "fired" || e.kind === "escalated" ? (e.severity === "critical" ? "critical" : "warning") : null;
  return line(Number(e.atMs), state, `${e.rule || e.alertId} ${e.kind}${e.detail ? `: ${e.detail}` : ""}`, "#/alerts");
}

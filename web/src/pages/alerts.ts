// Alerts: what is firing, pending or flapping, with ack and silence from
// the page; the silences; and the history, filtered.
import type { Alert, HistoryEntry, Silence } from "../gen/nightjar/v1/nightjar_pb";
import { alerts, describe, follow } from "../api";
import { fill, h, num, when } from "../dom";
import { alertState, badge, rank } from "../health";
import { parseMatcher } from "../matchers";
import type { Route } from "../main";

const AUTHOR_KEY = "nightjar.author";
const HISTORY_RANGES: [string, number][] = [
  ["1h", 3600e3],
  ["24h", 86400e3],
  ["7d", 7 * 86400e3],
];

export async function renderAlerts(main: HTMLElement, route: Route, signal: AbortSignal) {
  const [active, silences] = await Promise.all([alerts.listAlerts({}, { signal }), alerts.listSilences({}, { signal })]);
  const byId = new Map(active.alerts.map((a) => [a.id, a]));
  let silenceList = silences.silences;

  const find = h("input", { type: "search", placeholder: "Filter by rule, series, label (/)", "aria-label": "Filter alerts", value: route.params.get("q") ?? "" });
  const stateFilter = h("select", { "aria-label": "State" }, ["all", "firing", "pending", "flapping"].map((s) => h("option", { value: s }, s)));
  const body = h("tbody", {});
  const silenceBody = h("div", {});
  const historyList = h("ol", { class: "feed" });
  const historyRange = h("select", { "aria-label": "History range" }, HISTORY_RANGES.map(([n]) => h("option", { value: n }, `last ${n}`)));
  const historyKind = h("input", { type: "text", placeholder: "kind, e.g. fired", "aria-label": "History kind" });
  const message = h("p", { role: "status", class: "small" });

  const drawAlerts = () => {
    const q = find.value.trim().toLowerCase();
    const st = stateFilter.value;
    const rows = [...byId.values()]
      .filter((a) => st === "all" || a.state === st)
      .filter((a) => !q || [a.id, a.rule, a.series, a.summary, ...a.labels.map((l) => `${l.name}=${l.value}`)].some((t) => t.toLowerCase().includes(q)))
      .sort((a, b) => rank(alertState(b.state, b.severity)) - rank(alertState(a.state, a.severity)) || Number(b.changedMs - a.changedMs));
    fill(body, rows.length ? rows.map(alertRow) : h("tr", {}, h("td", { colspan: 6, class: "muted" }, byId.size ? "No alert matches." : "Nothing is firing, pending or flapping.")));
  };

  const alertRow = (a: Alert) =>
    h(
      "tr",
      { "data-alert": a.id, "data-state": a.state },
      h("td", {}, a.state === "pending" ? h("span", { class: "badge s-unknown" }, "… pending") : badge(alertState(a.state, a.severity)), a.state === "flapping" ? " flapping" : ""),
      h("td", {}, h("strong", {}, a.rule), h("div", { class: "small" }, a.series), a.summary ? h("div", { class: "small muted" }, a.summary) : null, a.runbook ? h("a", { class: "small", href: a.runbook, rel: "noopener" }, "runbook") : null),
      h("td", {}, num(a.value)),
      h("td", {}, a.startedMs ? when(Number(a.startedMs)) : "–"),
      h("td", { class: "small" }, a.ackedBy ? [`acked by ${a.ackedBy}`, a.ackNote ? `: ${a.ackNote}` : ""] : "", a.silencedBy ? h("div", {}, `silenced (${a.silencedBy})`) : null),
      h(
        "td",
        { class: "actions" },
        a.state !== "pending" && !a.ackedBy ? h("button", { type: "button", onclick: () => ackDialog(a) }, "Ack") : null,
        h("button", { type: "button", onclick: () => silenceDialog(a) }, "Silence"),
      ),
    );

  const drawSilences = () => {
    const now = Date.now();
    fill(
      silenceBody,
      silenceList.length
        ? h(
            "table",
            { class: "table" },
            h("thead", {}, h("tr", {}, ["Matchers", "Until", "By", "Comment", ""].map((t) => h("th", { scope: "col" }, t)))),
            h(
              "tbody",
              {},
              silenceList.map((s: Silence) =>
                h(
                  "tr",
                  { "data-silence": s.id },
                  h("td", {}, h("code", {}, s.matchers.join(", "))),
                  h("td", {}, Number(s.startsMs) > now ? `from ${when(Number(s.startsMs))} ` : "", when(Number(s.endsMs))),
                  h("td", {}, s.author),
                  h("td", {}, s.comment),
                  h("td", {}, h("button", { type: "button", onclick: () => expire(s) }, "Expire")),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No active silences."),
    );
  };

  const loadHistory = async () => {
    const span = HISTORY_RANGES.find(([n]) => n === historyRange.value)?.[1] ?? 3600e3;
    const answer = await alerts.alertHistory({ sinceMs: BigInt(Date.now() - span), limit: 500 }, { signal });
    const kind = historyKind.value.trim().toLowerCase();
    const q = find.value.trim().toLowerCase();
    const entries = answer.entries.filter((e) => (!kind || e.kind.includes(kind)) && (!q || [e.alertId, e.rule, e.detail].some((t) => t.toLowerCase().includes(q))));
    fill(historyList, entries.length ? entries.map(historyLine) : h("li", { class: "muted" }, "No history entry matches."));
  };

  const refresh = async () => {
    const fresh = await alerts.listAlerts({}, { signal });
    byId.clear();
    for (const a of fresh.alerts) byId.set(a.id, a);
    drawAlerts();
    await loadHistory();
  };
  // History follows the live events, at most once a second.
  let historyDue: ReturnType<typeof setTimeout> | null = null;
  const historySoon = () => {
    historyDue ??= setTimeout(() => {
      historyDue = null;
      if (!signal.aborted) loadHistory().catch(() => {});
    }, 1000);
  };
  signal.addEventListener("abort", () => historyDue && clearTimeout(historyDue));

  const dialog = h("dialog", { "aria-labelledby": "dlg-title" });
  const openForm = (title: string, fields: HTMLElement[], submit: (data: FormData) => Promise<void>) => {
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { method: "dialog" }, h("h2", { id: "dlg-title" }, title), fields, error, h("menu", {}, h("button", { type: "button", value: "cancel", onclick: () => dialog.close() }, "Cancel"), h("button", { type: "submit", value: "ok" }, "Save")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      try {
        localStorage.setItem(AUTHOR_KEY, String(data.get("author") ?? ""));
        await submit(data);
        dialog.close();
      } catch (err) {
        error.textContent = describe(err);
      }
    });
    fill(dialog, form);
    dialog.showModal();
  };
  const author = () => h("label", {}, "Your name ", h("input", { name: "author", required: true, autocomplete: "name", value: localStorage.getItem(AUTHOR_KEY) ?? "" }));

  const ackDialog = (a: Alert) =>
    openForm(`Acknowledge ${a.rule}`, [h("p", { class: "small" }, a.series), author(), h("label", {}, "Note ", h("textarea", { name: "note", rows: 3, placeholder: "What you are doing about it" }))], async (data) => {
      const answer = await alerts.ack({ id: a.id, by: String(data.get("author")), note: String(data.get("note") ?? "") }, { signal });
      if (answer.alert) byId.set(answer.alert.id, answer.alert);
      message.textContent = `Acknowledged ${a.rule} ${a.series}.`;
      drawAlerts();
    });

  const silenceDialog = (a: Alert) => {
    const wanted = ["alertname", "host", "service", "check", "process"];
    const matchers = a.labels.filter((l) => wanted.includes(l.name)).map((l) => `${l.name}=${l.value}`);
    openForm(
      `Silence ${a.rule}`,
      [
        h("label", {}, "Matchers (one per line: k=v, k!=v, k=~re, k!~re) ", h("textarea", { name: "matchers", rows: 3, required: true }, matchers.join("\n"))),
        h("label", {}, "For ", h("select", { name: "duration" }, [["30m", 30], ["1h", 60], ["2h", 120], ["4h", 240], ["1d", 1440]].map(([n, m]) => h("option", { value: String(m), selected: n === "2h" }, String(n))))),
        author(),
        h("label", {}, "Comment ", h("textarea", { name: "comment", rows: 2, required: true, placeholder: "Why (a change, a known issue)" })),
      ],
      async (data) => {
        const lines = String(data.get("matchers") ?? "").split("\n").map((l) => l.trim()).filter(Boolean);
        const bad = lines.find((l) => !parseMatcher(l));
        if (bad) throw new Error(`"${bad}" is not a matcher; write k=v, k!=v, k=~re or k!~re`);
        const ends = Date.now() + Number(data.get("duration")) * 60e3;
        const answer = await alerts.addSilence({ matchers: lines, endsMs: BigInt(ends), author: String(data.get("author")), comment: String(data.get("comment") ?? "") }, { signal });
        if (answer.silence) silenceList = [...silenceList, answer.silence];
        message.textContent = `Silenced ${lines.join(", ")} until ${when(ends)}.`;
        drawSilences();
        // A silence is no alert event: ask which alerts it now holds back.
        await refresh();
      },
    );
  };

  const expire = async (s: Silence) => {
    try {
      await alerts.expireSilence({ id: s.id }, { signal });
      silenceList = silenceList.filter((x) => x.id !== s.id);
      message.textContent = `Expired the silence ${s.matchers.join(", ")}.`;
      drawSilences();
      await refresh();
    } catch (e) {
      message.textContent = describe(e);
    }
  };

  fill(
    main,
    h("div", { class: "board-head" }, h("h1", {}, "Alerts"), h("div", { class: "row" }, stateFilter, find)),
    message,
    h("div", { class: "card scroll" }, h("table", { class: "table alerts" }, h("thead", {}, h("tr", {}, ["State", "Alert", "Value", "Since", "Ack / silence", ""].map((t) => h("th", { scope: "col" }, t)))), body)),
    h("section", { class: "card" }, h("h2", {}, "Silences"), silenceBody),
    h("section", { class: "card" }, h("div", { class: "row" }, h("h2", {}, "History"), historyRange, historyKind), historyList),
    dialog,
  );
  find.addEventListener("input", () => {
    drawAlerts();
    loadHistory().catch(() => {});
  });
  stateFilter.addEventListener("change", drawAlerts);
  historyRange.addEventListener("change", () => loadHistory().catch(() => {}));
  historyKind.addEventListener("input", () => loadHistory().catch(() => {}));
  drawAlerts();
  drawSilences();
  await loadHistory();
  main.dataset.ready = "true";

  follow(
    (s) => alerts.watchAlerts({}, { signal: s }),
    (ev) => {
      const a = ev.alert;
      if (!a) return;
      if (ev.kind === "resolved" || ev.kind === "cleared") byId.delete(a.id);
      else byId.set(a.id, a);
      drawAlerts();
      historySoon();
    },
    signal,
    refresh,
  ).catch(() => {});
}

function historyLine(e: HistoryEntry): HTMLElement {
  return h("li", { "data-kind": e.kind }, h("time", { datetime: new Date(Number(e.atMs)).toISOString() }, when(Number(e.atMs))), " ", h("strong", {}, e.kind), " ", e.rule || e.alertId, e.severity ? ` (${e.severity})` : "", e.value !== undefined ? ` = ${num(e.value)}` : "", e.detail ? ` · ${e.detail}` : "");
}

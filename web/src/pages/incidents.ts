// Incidents (docs/incidents.md): the list; one incident with its
// timeline, notes, acknowledgement and resolve, "what changed?", and its
// review fields and follow-ups editable; and the open follow-ups with the
// recurring incidents that are candidate problems. Live: each page
// reloads when an alert changes (an incident changes with its alerts).
import type { ChangeRecord, FollowUp, Incident, TimelineEntry } from "../gen/nightjar/v1/nightjar_pb";
import { alerts, describe, follow, incidents } from "../api";
import { ago, fill, h, when } from "../dom";
import { badge, type State } from "../health";
import type { Route } from "../main";

const AUTHOR_KEY = "nightjar.author";
const DAY = 86400e3;

function state(i: Incident): State {
  if (i.state === "resolved") return "ok";
  return i.severity === "critical" ? "critical" : "warning";
}

function minutes(ms: number): string {
  const m = Math.round(ms / 60e3);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min`;
}

function lasted(i: Incident): string {
  const end = Number(i.resolvedMs) || Date.now();
  return minutes(end - Number(i.openedMs));
}

/** Reloads `load` whenever an alert changes (at most once a second). */
function liveReload(load: () => Promise<void>, signal: AbortSignal) {
  let due: ReturnType<typeof setTimeout> | null = null;
  signal.addEventListener("abort", () => due && clearTimeout(due));
  follow(
    (s) => alerts.watchAlerts({}, { signal: s }),
    () => {
      due ??= setTimeout(() => {
        due = null;
        if (!signal.aborted) load().catch(() => {});
      }, 1000);
    },
    signal,
    load,
  ).catch(() => {});
}

export async function renderIncidents(main: HTMLElement, route: Route, signal: AbortSignal) {
  const body = h("tbody", {});
  const days = Number(route.params.get("days") ?? 7);
  const load = async () => {
    const answer = await incidents.listIncidents({ sinceMs: BigInt(Date.now() - days * DAY), limit: 500 }, { signal });
    fill(
      body,
      answer.incidents.length
        ? answer.incidents.map((i) =>
            h(
              "tr",
              { "data-incident": i.id, "data-state": i.state },
              h("td", {}, badge(state(i), i.state === "resolved" ? "resolved" : "")),
              h("td", {}, h("a", { href: `#/incident/${i.id}` }, h("strong", {}, i.id)), " ", i.title),
              h("td", {}, `${i.firing} / ${i.alerts.length}`),
              h("td", {}, when(Number(i.openedMs))),
              h("td", {}, lasted(i)),
              h("td", { class: "small" }, i.ackedBy ? `acked by ${i.ackedBy}` : h("span", { class: "error" }, "not acknowledged")),
              h("td", { class: "small" }, i.services.join(", ") || i.hosts.join(", ")),
            ),
          )
        : h("tr", {}, h("td", { colspan: 7, class: "muted" }, `No incident in the last ${days} days.`)),
    );
  };
  fill(
    main,
    h("div", { class: "board-head" }, h("h1", {}, "Incidents"), h("nav", { class: "segmented", "aria-label": "Range" }, [7, 30, 90].map((d) => h("a", { href: `#/incidents?days=${d}`, "aria-pressed": String(d === days) }, `${d} d`)), h("a", { href: "#/followups" }, "Follow-ups"))),
    h("div", { class: "card scroll" }, h("table", { class: "table incidents" }, h("thead", {}, h("tr", {}, ["State", "Incident", "Firing", "Opened", "Lasted", "Ack", "Scope"].map((t) => h("th", { scope: "col" }, t)))), body)),
  );
  await load();
  main.dataset.ready = "true";
  liveReload(load, signal);
}

const REVIEW_FIELDS: [string, string, "line" | "text"][] = [
  ["title", "Title", "line"],
  ["summary", "Summary", "text"],
  ["rootCause", "Root cause", "text"],
  ["trigger", "Trigger", "text"],
  ["resolution", "Resolution", "text"],
  ["detection", "Detection (alert, customer report, …)", "line"],
  ["changeId", "Linked change", "line"],
  ["lessons", "Lessons learned", "text"],
];
const CATEGORIES = ["", "change", "capacity", "hardware", "software_defect", "configuration", "dependency", "unknown"];

function timelineLine(e: TimelineEntry): HTMLElement {
  return h(
    "li",
    { "data-kind": e.kind },
    h("time", { datetime: new Date(Number(e.atMs)).toISOString() }, when(Number(e.atMs))),
    " ",
    h("strong", {}, e.kind.replace(/_/g, " ")),
    e.by ? ` by ${e.by}` : "",
    e.detail ? ` · ${e.detail}` : "",
  );
}

function changeLine(c: ChangeRecord): HTMLElement {
  return h("li", { "data-change": c.id }, h("time", {}, when(Number(c.atMs))), " ", h("strong", {}, c.id), ` ${c.what} — ${c.by}, risk ${c.risk}`, c.backout ? h("div", { class: "small muted" }, `backout: ${c.backout}`) : null);
}

function followUpRows(list: FollowUp[], onState?: (f: FollowUp, to: string) => void): HTMLElement {
  if (!list.length) return h("p", { class: "muted" }, "No follow-ups.");
  return h(
    "table",
    { class: "table followups" },
    h("thead", {}, h("tr", {}, ["Id", "Action", "Kind", "Owner", "Due", "State", "Incidents"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      list.map((f) =>
        h(
          "tr",
          { "data-followup": f.id, "data-overdue": String(f.overdue), class: f.overdue ? "overdue" : "" },
          h("td", {}, f.id),
          h("td", {}, f.title, f.note ? h("div", { class: "small muted" }, f.note) : null),
          h("td", {}, f.kind),
          h("td", {}, f.owner),
          h("td", {}, f.dueMs ? new Date(Number(f.dueMs)).toISOString().slice(0, 10) : "–", f.overdue ? h("strong", { class: "error" }, " overdue") : null),
          h(
            "td",
            {},
            onState
              ? h(
                  "select",
                  { "aria-label": `State of ${f.id}`, onchange: (e: Event) => onState(f, (e.target as HTMLSelectElement).value) },
                  ["open", "in_progress", "done", "wont_do"].map((s) => h("option", { value: s, selected: s === f.state }, s.replace("_", " "))),
                )
              : f.state,
          ),
          h("td", {}, f.incidents.map((i, k) => [k ? ", " : "", h("a", { href: `#/incident/${i}` }, i)])),
        ),
      ),
    ),
  );
}

export async function renderIncident(main: HTMLElement, route: Route, signal: AbortSignal) {
  const id = route.arg;
  const head = h("div", {});
  const message = h("p", { role: "status", class: "small" });
  const changed = h("section", { class: "card", "aria-labelledby": "what-changed" });
  const alertList = h("section", { class: "card" });
  const timeline = h("ol", { class: "feed timeline" });
  const review = h("form", { class: "review", "aria-label": "Review" });
  const followBox = h("section", { class: "card" });
  const author = () => localStorage.getItem(AUTHOR_KEY) ?? "";
  const who = h("input", { name: "author", required: true, autocomplete: "name", value: author(), "aria-label": "Your name" });
  const remember = () => localStorage.setItem(AUTHOR_KEY, who.value.trim());
  let incident: Incident | undefined;
  let markdown = "";

  const act = async (what: string, f: () => Promise<unknown>) => {
    if (!who.value.trim()) {
      message.textContent = "Say who you are first (your name).";
      who.focus();
      return;
    }
    remember();
    try {
      await f();
      message.textContent = what;
      await load();
    } catch (e) {
      message.textContent = describe(e);
    }
  };

  const noteText = h("textarea", { rows: 2, placeholder: "What is happening: the update stakeholders read", "aria-label": "Note" });
  const noteForm = h(
    "form",
    { class: "row" },
    noteText,
    h("button", { type: "submit" }, "Add note"),
  );
  noteForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = noteText.value.trim();
    act("Note added.", async () => {
      await incidents.noteIncident({ id, by: who.value.trim(), text }, { signal });
      noteText.value = "";
    });
  });

  const load = async () => {
    const answer = await incidents.getIncident({ id }, { signal });
    incident = answer.incident;
    markdown = answer.postmortemMarkdown;
    const i = incident!;
    fill(
      head,
      h("div", { class: "board-head" }, h("h1", { "data-state": i.state }, `${i.id} `, badge(state(i), i.state === "resolved" ? "resolved" : ""), " ", i.title)),
      h(
        "p",
        { class: "muted" },
        `Opened ${when(Number(i.openedMs))}, ${i.state === "open" ? "open for" : "lasted"} ${lasted(i)}`,
        i.ackedBy ? `, acknowledged by ${i.ackedBy} after ${minutes(Number(i.ackedMs) - Number(i.openedMs))}` : ", not acknowledged",
        i.reopened ? `, reopened ${i.reopened}×` : "",
        `. Last update ${ago(Number(i.lastNoteMs))}.`,
      ),
      h("p", {}, i.services.map((s) => [h("a", { href: `#/service/${encodeURIComponent(s)}` }, s), " "]), i.hosts.map((x) => [h("a", { class: "small", href: `#/host/${encodeURIComponent(x)}` }, x), " "])),
      h(
        "div",
        { class: "row actions" },
        h("label", {}, "Your name ", who),
        i.state === "open" ? h("button", { type: "button", onclick: () => act("Acknowledged: its alerts repeat to nobody.", () => incidents.ackIncident({ id, by: who.value.trim(), note: noteText.value.trim() }, { signal })) }, "Acknowledge") : null,
        i.state === "open" ? h("button", { type: "button", onclick: () => act("Resolved.", () => incidents.resolveIncident({ id, by: who.value.trim(), note: noteText.value.trim() }, { signal })) }, "Resolve") : null,
        h("a", { href: URL.createObjectURL(new Blob([markdown], { type: "text/markdown" })), download: `${i.id}-postmortem.md` }, "Postmortem (Markdown)"),
      ),
      noteForm,
    );
    fill(
      changed,
      h("h2", { id: "what-changed" }, "What changed?"),
      answer.changesBefore.length ? h("ul", { class: "changes" }, answer.changesBefore.map(changeLine)) : h("p", { class: "muted" }, "No change to its services or hosts was recorded in the hours before it opened."),
      answer.changesDuring.length ? [h("h3", {}, "During the incident"), h("ul", { class: "changes" }, answer.changesDuring.map(changeLine))] : null,
    );
    fill(
      alertList,
      h("h2", {}, `Alerts (${i.firing} of ${i.alerts.length} firing)`),
      h(
        "ul",
        { class: "components" },
        i.alerts.map((a) => h("li", { "data-alert": a.alertId }, badge(a.severity === "critical" ? "critical" : a.severity === "warning" ? "warning" : "ok", a.severity ? "" : "resolved"), ` ${a.rule} `, a.host ? h("a", { href: `#/host/${encodeURIComponent(a.host)}` }, a.host) : "", ` · ${a.summary}`)),
      ),
    );
    fill(timeline, answer.timeline.map(timelineLine));
    drawReview(i);
    fill(followBox, h("h2", {}, "Follow-ups"), followUpRows(answer.followUps), addFollowUp());
  };

  const drawReview = (i: Incident) => {
    const r = i.review!;
    const values: Record<string, string> = { title: i.title, summary: r.summary, rootCause: r.rootCause, trigger: r.trigger, resolution: r.resolution, detection: r.detection, changeId: r.changeId, lessons: r.lessons };
    fill(
      review,
      h("h2", {}, "Review"),
      REVIEW_FIELDS.map(([name, title, kind]) => h("label", {}, `${title} `, kind === "line" ? h("input", { name, value: values[name] }) : h("textarea", { name, rows: 2 }, values[name]))),
      h("label", {}, "Category ", h("select", { name: "category" }, CATEGORIES.map((c) => h("option", { value: c, selected: c === r.category }, c ? c.replace("_", " ") : "— not yet known —")))),
      h(
        "fieldset",
        {},
        h("legend", {}, "Impact (what the availability report counts)"),
        h("label", {}, "Share of users hit (0–1) ", h("input", { name: "userShare", type: "number", min: 0, max: 1, step: 0.01, value: r.hasImpact ? r.userShare : "" })),
        h("label", {}, "Of their work lost (0–1) ", h("input", { name: "functionalImpact", type: "number", min: 0, max: 1, step: 0.01, value: r.hasImpact ? r.functionalImpact : "" })),
      ),
      h("button", { type: "submit" }, "Save review"),
    );
  };
  review.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(review);
    const i = incident!;
    const r = i.review!;
    const before: Record<string, string> = { title: i.title, summary: r.summary, rootCause: r.rootCause, trigger: r.trigger, resolution: r.resolution, detection: r.detection, changeId: r.changeId, lessons: r.lessons, category: r.category };
    // Only what changed: each field set is a line of the timeline.
    const patch: Record<string, string | number> = {};
    for (const [name] of [...REVIEW_FIELDS, ["category"]]) {
      const v = String(data.get(name) ?? "");
      if (v !== before[name]) patch[name] = v;
    }
    const share = String(data.get("userShare") ?? "");
    const lost = String(data.get("functionalImpact") ?? "");
    if (share !== "" && lost !== "" && (!r.hasImpact || Number(share) !== r.userShare || Number(lost) !== r.functionalImpact)) {
      patch.userShare = Number(share);
      patch.functionalImpact = Number(lost);
    }
    if (!Object.keys(patch).length) {
      message.textContent = "Nothing changed.";
      return;
    }
    act("Review saved.", () => incidents.setIncident({ id, by: who.value.trim(), ...patch } as Parameters<typeof incidents.setIncident>[0], { signal }));
  });

  const addFollowUp = () => {
    const form = h(
      "form",
      { class: "row", "aria-label": "Add a follow-up" },
      h("input", { name: "title", required: true, placeholder: "What is to be done", "aria-label": "Action" }),
      h("input", { name: "owner", required: true, placeholder: "Owner", "aria-label": "Owner" }),
      h("input", { name: "due", type: "date", "aria-label": "Due" }),
      h("select", { name: "kind", "aria-label": "Kind" }, ["prevent", "detect", "mitigate"].map((k) => h("option", { value: k }, k))),
      h("button", { type: "submit" }, "Add follow-up"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const d = new FormData(form);
      act("Follow-up added.", () => incidents.addFollowUp({ title: String(d.get("title")), owner: String(d.get("owner")), due: String(d.get("due") ?? ""), kind: String(d.get("kind")), incidents: [id] }, { signal }));
    });
    return form;
  };

  fill(
    main,
    h("p", {}, h("a", { href: "#/incidents" }, "← Incidents")),
    head,
    message,
    changed,
    alertList,
    h("section", { class: "card" }, h("h2", {}, "Timeline"), timeline),
    h("section", { class: "card" }, review),
    followBox,
  );
  await load();
  main.dataset.ready = "true";
  liveReload(load, signal);
}

export async function renderFollowUps(main: HTMLElement, route: Route, signal: AbortSignal) {
  const all = route.params.get("all") === "1";
  const box = h("div", {});
  const message = h("p", { role: "status", class: "small" });
  const load = async () => {
    const answer = await incidents.listFollowUps({ openOnly: !all }, { signal });
    const overdue = answer.followUps.filter((f) => f.overdue).length;
    fill(
      box,
      h("p", { class: overdue ? "error" : "muted" }, `${answer.followUps.length} ${all ? "follow-ups" : "open"}, ${overdue} overdue.`),
      h("div", { class: "card scroll" }, followUpRows(answer.followUps, (f, to) => {
        incidents
          .updateFollowUp({ id: f.id, state: to }, { signal })
          .then(() => {
            message.textContent = `${f.id} is ${to.replace("_", " ")}.`;
            return load();
          })
          .catch((e) => {
            message.textContent = describe(e);
            load().catch(() => {});
          });
      })),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Recurring incidents (candidate problems)"),
        answer.candidates.length
          ? h("ul", {}, answer.candidates.map((c) => h("li", { "data-recurring": c.key }, h("strong", {}, c.key), ` — ${c.incidents.length} times: `, c.incidents.map((i, k) => [k ? ", " : "", h("a", { href: `#/incident/${i}` }, i)]), c.hasFollowUp ? " (has a follow-up)" : h("strong", { class: "error" }, " no follow-up yet"))))
          : h("p", { class: "muted" }, "Nothing recurs often enough to be a problem."),
      ),
    );
  };
  fill(main, h("div", { class: "board-head" }, h("h1", {}, "Follow-ups"), h("nav", { class: "segmented" }, h("a", { href: "#/followups", "aria-pressed": String(!all) }, "Open"), h("a", { href: "#/followups?all=1", "aria-pressed": String(all) }, "All"), h("a", { href: "#/incidents" }, "Incidents"))), message, box);
  await load();
  main.dataset.ready = "true";
}

// A service's availability on its page: one bar per day over 30 or 90
// days against the target, and the error budget's burn-down.
import uPlot from "uplot";
import { Code, ConnectError } from "@connectrpc/connect";
import { availability } from "../api";
import { h, fill, num } from "../dom";

const DAY = 86_400_000;

/** The section, filled in when the service has a target (else removed). */
export function availabilitySection(service: string, days: number, signal: AbortSignal): HTMLElement {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading availability…"));
  const section = h("section", { class: "card", "aria-labelledby": "avail-h", "data-availability": service }, h("div", { class: "row" }, h("h2", { id: "avail-h" }, "Availability"), h("span", { class: "muted small" }, `last ${days} days · `, h("a", { href: `#/service/${encodeURIComponent(service)}?days=${days === 30 ? 90 : 30}` }, `show ${days === 30 ? 90 : 30} days`))), body);
  const end = Date.now();
  const start = Math.floor((end - (days - 1) * DAY) / DAY) * DAY;
  availability
    .report({ service, fromMs: BigInt(start), toMs: BigInt(end), daily: true }, { signal })
    .then((answer) => {
      const s = answer.services[0];
      if (!s) return section.remove();
      const bars = h(
        "div",
        { class: "bars", role: "list", "aria-label": `Availability per day against ${s.targetPercent} %` },
        s.days.map((d) => {
          const known = d.scheduledMinutes - d.unknownMinutes;
          const state = d.scheduledMinutes === 0 ? "none" : known <= 0 ? "unknown" : d.availabilityPercent >= s.targetPercent ? "ok" : d.availabilityPercent >= 2 * s.targetPercent - 100 ? "warning" : "critical";
          const day = new Date(Number(d.dayStartMs)).toISOString().slice(0, 10);
          const text = state === "none" ? `${day}: not scheduled` : state === "unknown" ? `${day}: unknown` : `${day}: ${d.availabilityPercent.toFixed(3)} % (${num(d.weightedOutageMinutes)} min lost, ${num(d.unknownMinutes)} min unknown)`;
          const lost = Math.min(1, (100 - d.availabilityPercent) / Math.max(0.001, 100 - s.targetPercent) / 2);
          return h("span", { class: `bar b-${state}`, role: "listitem", title: text, "aria-label": text, style: `--lost:${(state === "ok" || state === "warning" || state === "critical" ? lost : 0).toFixed(3)}` });
        }),
      );
      const burn = h("div", { class: "plot" });
      fill(
        body,
        h("p", {}, h("strong", { class: "figure-value" }, `${s.availabilityPercent.toFixed(3)} %`), ` against a target of ${s.targetPercent} % · `, s.met ? "✔ met" : "✖ missed", ` · budget left ${num(s.budgetLeftMinutes)} of ${num(s.budgetMinutes)} min · ${s.incidents} incident${s.incidents === 1 ? "" : "s"} · ${num(s.unknownMinutes)} min unknown`),
        bars,
        h("h3", {}, "Error budget left (minutes)"),
        burn,
      );
      const xs = s.days.map((d) => (Number(d.dayStartMs) + DAY) / 1000);
      const ys = s.days.map((d) => d.budgetLeftMinutes);
      new uPlot({ width: Math.max(260, body.clientWidth || 400), height: 140, legend: { show: false }, scales: { x: { time: true } }, series: [{}, { label: "budget left", stroke: "#3b82f6", width: 2, fill: "rgba(59,130,246,0.12)" }] }, [xs, ys], burn);
    })
    .catch((e) => {
      const err = ConnectError.from(e);
      if (err.code === Code.FailedPrecondition || err.code === Code.NotFound) section.remove();
      else if (!signal.aborted) fill(body, h("p", { class: "error" }, err.rawMessage));
    });
  return section;
}

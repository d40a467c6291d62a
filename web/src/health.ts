// How a state looks: colour, word and icon together, so that no one has
// to tell red from green to read the board.
import { Health } from "./gen/nightjar/v1/nightjar_pb";
import { h } from "./dom";

export type State = "ok" | "unknown" | "warning" | "critical";

export function stateOf(health: Health): State {
  switch (health) {
    case Health.OK:
      return "ok";
    case Health.WARNING:
      return "warning";
    case Health.CRITICAL:
      return "critical";
    default:
      return "unknown";
  }
}

const ICON: Record<State, string> = { ok: "✔", unknown: "?", warning: "▲", critical: "✖" };
const WORD: Record<State, string> = { ok: "OK", unknown: "No data", warning: "Warning", critical: "Critical" };
const RANK: Record<State, number> = { ok: 0, unknown: 1, warning: 2, critical: 3 };

/** Worst first ordering key. */
export const rank = (s: State) => RANK[s];

export function worst(states: State[]): State {
  return states.reduce<State>((w, s) => (RANK[s] > RANK[w] ? s : w), "ok");
}

/** The badge: icon + word in the state's colour. */
export function badge(s: State, extra = ""): HTMLElement {
  return h(
    "span",
    { class: `badge s-${s}`, "data-state": s },
    h("span", { class: "icon", "aria-hidden": "true" }, ICON[s]),
    " ",
    WORD[s],
    extra ? ` ${extra}` : "",
  );
}

/** The state of a firing/flapping/pending alert. */
export function alertState(state: string, severity: string): State {
  if (state === "pending") return "ok";
  if (state === "flapping") return "warning";
  return severity === "critical" ? "critical" : "warning";
}

// The alerts the page knows of, kept current by the WatchAlerts stream.
import type { Alert, AlertEvent } from "./gen/nightjar/v1/nightjar_pb";
import { alertState, type State, worst } from "./health";

export class AlertSet {
  readonly byId = new Map<string, Alert>();

  constructor(alerts: Alert[]) {
    for (const a of alerts) this.byId.set(a.id, a);
  }

  /** Applies one event; returns the alert's host label, if any. */
  apply(ev: AlertEvent): string | undefined {
    const a = ev.alert;
    if (!a) return undefined;
    if (ev.kind === "resolved" || ev.kind === "cleared") this.byId.delete(a.id);
    else this.byId.set(a.id, a);
    return label(a, "host");
  }

  /** Each host's state from its firing alerts (pending ones do not count). */
  hosts(): Map<string, State> {
    const out = new Map<string, State>();
    for (const a of this.byId.values()) {
      const host = label(a, "host");
      if (host) out.set(host, worst([out.get(host) ?? "ok", alertState(a.state, a.severity)]));
    }
    return out;
  }
}

export function label(a: { labels: { name: string; value: string }[] }, name: string): string | undefined {
  return a.labels.find((l) => l.name === name)?.value;
}

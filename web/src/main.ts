// The dashboard's shell: routes (#/..., so the collector serves one file),
// the theme, keyboard shortcuts and the token prompt.
import "./style.css";
import { describe, needsToken, onLive, setToken } from "./api";
import { h, fill } from "./dom";
import { renderBoard } from "./pages/board";
import { renderService } from "./pages/service";
import { renderHost } from "./pages/host";
import { renderAlerts } from "./pages/alerts";
import { renderNightjar } from "./pages/nightjar";
import { renderFollowUps, renderIncident, renderIncidents } from "./pages/incidents";
import { renderCapacity } from "./pages/capacity";

export interface Route {
  page: string;
  arg: string;
  params: URLSearchParams;
}

type Render = (main: HTMLElement, route: Route, signal: AbortSignal) => Promise<void>;

const PAGES: Record<string, Render> = {
  board: renderBoard,
  service: renderService,
  host: renderHost,
  alerts: renderAlerts,
  nightjar: renderNightjar,
  incidents: renderIncidents,
  incident: renderIncident,
  followups: renderFollowUps,
  capacity: renderCapacity,
};

export function parseRoute(hash: string): Route {
  const [path, qs] = hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/");
  return {
    page: page || "board",
    arg: decodeURIComponent(rest.join("/")),
    params: new URLSearchParams(qs ?? ""),
  };
}

const main = document.getElementById("main") as HTMLElement;
let current: AbortController | null = null;

async function show() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const route = parseRoute(location.hash);
  const render = PAGES[route.page];
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    const page = route.page === "incident" || route.page === "followups" ? "incidents" : route.page;
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!render) {
    fill(main, h("h1", {}, "Not found"), h("p", {}, "No page is called ", h("code", {}, route.page), ". ", h("a", { href: "#/" }, "Back to the board")));
    return;
  }
  fill(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await render(main, route, controller.signal);
  } catch (e) {
    if (controller.signal.aborted) return;
    if (needsToken(e)) {
      askToken(describe(e));
      return;
    }
    fill(main, h("h1", {}, "Cannot load this page"), h("p", { class: "error", role: "alert" }, describe(e)), h("button", { type: "button", onclick: () => show() }, "Try again"));
  }
}

function askToken(why: string) {
  const dialog = document.getElementById("token-dialog") as HTMLDialogElement;
  const form = document.getElementById("token-form") as HTMLFormElement;
  (document.getElementById("token-error") as HTMLElement).textContent = why;
  form.onsubmit = () => {
    const data = new FormData(form);
    setToken(String(data.get("token") ?? "").trim(), data.get("remember") === "on");
    form.reset();
    queueMicrotask(show);
  };
  if (!dialog.open) dialog.showModal();
}

// Themes: the system's by default; the button cycles and remembers.
function applyTheme(theme: string | null) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const button = document.getElementById("theme") as HTMLButtonElement;
  button.textContent = theme === "dark" ? "Dark" : theme === "light" ? "Light" : "Auto";
  button.setAttribute("aria-label", `Theme: ${button.textContent}. Switch theme`);
}
function cycleTheme() {
  const next: Record<string, string | null> = { auto: "dark", dark: "light", light: null };
  const now = localStorage.getItem("nightjar.theme") ?? "auto";
  const theme = next[now] ?? null;
  if (theme) localStorage.setItem("nightjar.theme", theme);
  else localStorage.removeItem("nightjar.theme");
  applyTheme(theme);
  window.dispatchEvent(new Event("themechange"));
}
applyTheme(localStorage.getItem("nightjar.theme"));
document.getElementById("theme")!.addEventListener("click", cycleTheme);

// Keyboard: g then b/a/i/c/n goes to a page, t switches the theme, / finds.
let pendingG = false;
document.addEventListener("keydown", (e) => {
  const target = e.target as HTMLElement;
  if (e.ctrlKey || e.metaKey || e.altKey || target.closest("input, textarea, select, dialog")) return;
  if (pendingG) {
    pendingG = false;
    const to: Record<string, string> = { b: "#/", a: "#/alerts", i: "#/incidents", c: "#/capacity", n: "#/nightjar" };
    if (to[e.key]) {
      location.hash = to[e.key];
      e.preventDefault();
    }
    return;
  }
  if (e.key === "g") pendingG = true;
  else if (e.key === "t") cycleTheme();
  else if (e.key === "/") {
    const find = document.querySelector<HTMLInputElement>("input[type=search]");
    if (find) {
      find.focus();
      e.preventDefault();
    }
  }
});

const live = document.getElementById("live") as HTMLElement;
onLive((on) => {
  live.textContent = on ? "● live" : "○ reconnecting";
  live.dataset.live = String(on);
});

window.addEventListener("hashchange", () => {
  show();
  main.focus({ preventScroll: true });
});
show();

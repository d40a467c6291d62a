// The browser tests' harness: the real collector, agent and CLI binaries
// (built by `cargo build --workspace --bins`), Debian's Chromium driven by
// playwright-core, and polling with deadlines (never sleeps to wait).
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;
const targetDir = process.env.CARGO_TARGET_DIR ?? join(here, "../../target");
export const CHROMIUM = process.env.NIGHTJAR_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = process.env.NIGHTJAR_ARTIFACTS ?? join(here, "../test-results");

export function bin(name) {
  const path = join(targetDir, "debug", name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run cargo build --workspace --bins first`);
  return path;
}

/** Why the browser tests cannot run here, or null. */
export function missingBrowser() {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (apt-get install chromium; scripts/ensure-build-deps.sh does)`;
}

export function tempDir(what) {
  return mkdtempSync(join(tmpdir(), `nightjar-web-${what}-`));
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `f` until it returns a value other than undefined/false. */
export async function poll(what, f, deadlineMs = 30000) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false && v !== null) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Children die with the test process, whatever ends it.
const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** A child process whose stderr lines are kept. */
class Proc {
  constructor(cmd, args, env = {}) {
    this.lines = [];
    this.child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let partial = "";
    this.child.stderr.on("data", (chunk) => {
      const text = partial + chunk.toString();
      const parts = text.split("\n");
      partial = parts.pop();
      this.lines.push(...parts);
    });
    children.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code, signal) => {
        children.delete(this.child);
        resolve({ code, signal });
      }),
    );
  }
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    return this.exited;
  }
}

/** A collector on free ports with `files` written beside its config. */
export async function startCollector(dir, config, files = {}) {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, "collector.toml"), config);
  const port = await freePort();
  const proc = new Proc(bin("nightjar-collector"), ["--config", join(dir, "collector.toml"), "--listen", `127.0.0.1:${port}`, "--data-dir", join(dir, "data"), "--http-listen", "127.0.0.1:0"], { RUST_LOG: "info" });
  const http = await poll("the collector's HTTP port", () => {
    const line = proc.lines.find((l) => l.includes("HTTP status port"));
    const m = line && /127\.0\.0\.1:(\d+)/.exec(line);
    if (proc.child.exitCode !== null) throw new Error(`the collector exited: ${proc.lines.join("\n")}`);
    return m ? `http://127.0.0.1:${m[1]}` : undefined;
  });
  const grpc = `http://127.0.0.1:${port}`;
  await poll("the collector's gRPC port", () => new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  }));
  await poll("a healthy collector", async () => (await fetch(`${http}/healthz`)).status === 200);
  return { proc, http, grpc };
}

/** An agent for `host`, sampling every second, with statsd on `statsdPort`. */
export function startAgent(dir, grpc, host, statsdPort) {
  mkdirSync(join(dir, "agent-state"), { recursive: true });
  return new Proc(bin("nightjar-agent"), ["--collector", grpc, "--interval", "1s", "--host", host, "--state-dir", join(dir, "agent-state"), "--http-listen", "off", "--statsd", `127.0.0.1:${statsdPort}`], { RUST_LOG: "info" });
}

const run = promisify(execFile);

/** `nightjar --collector URL --json ARGS...`, parsed. */
export async function cli(grpc, args, env = {}) {
  const { stdout } = await run(bin("nightjar"), ["--collector", grpc, "--json", ...args], { env: { ...process.env, ...env } });
  return stdout.trim() ? JSON.parse(stdout) : null;
}

/** Hashes `token` into a line of the collector's token file. */
export async function tokenLine(role, name, token) {
  return new Promise((resolve, reject) => {
    const child = execFile(bin("nightjar"), ["token", "hash", role, name], (err, stdout) => (err ? reject(err) : resolve(stdout)));
    child.stdin.end(token);
  });
}

/** Headless Chromium with the flags this closed network needs. */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Records console errors and page errors of `page`. */
export function watchConsole(page) {
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  return errors;
}

/** Keeps a screenshot as a CI artifact. */
export async function screenshot(page, name) {
  mkdirSync(join(ARTIFACTS, "screenshots"), { recursive: true });
  const path = join(ARTIFACTS, "screenshots", `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

// The browser half of bench/dashboard (nightjar-bench-dashboard runs it):
// headless Chromium on the collector's HTTP port. Prints "closed" and
// "open" for the CPU windows (waits for "next" on stdin after each), then
// one JSON line of results.
import { createInterface } from "node:readline";
import { chromium } from "../../web/node_modules/playwright-core/index.mjs";

const [base, host, runsText] = process.argv.slice(2);
const runs = Number(runsText ?? 9);
const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const next = async () => {
  const { value } = await lines.next();
  if (value !== "next") throw new Error(`expected "next", got ${value}`);
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const browser = await chromium.launch({
  executablePath: process.env.NIGHTJAR_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];

// What the browser downloads, as served: gzipped (Content-Length is the
// encoded size; fetch decodes the body itself).
let assetBytes = 0;
for (const path of ["/app.js", "/app.css"]) {
  const res = await fetch(`${base}${path}`, { headers: { "accept-encoding": "gzip" } });
  await res.arrayBuffer();
  if (res.headers.get("content-encoding") !== "gzip") throw new Error(`${path} was not served gzipped`);
  assetBytes += Number(res.headers.get("content-length"));
}

// First render of the board: navigation start to every tile, host and
// reading drawn (main[data-ready]), in a fresh page each run (cache warm
// after the first, as for a support analyst's second visit).
const board = [];
let boardBreakdown = null;
let tiles = 0;
let hostTiles = 0;
for (let i = 0; i < runs; i++) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(`${base}/#/`);
  await page.waitForSelector("main[data-ready=true]", { timeout: 60000 });
  // From navigation start to the first frame with the whole board drawn
  // (the page marks it), not to Playwright's next poll.
  await page.waitForFunction(() => performance.getEntriesByName("board:painted").length > 0, null, { timeout: 60000 });
  board.push(await page.evaluate(() => performance.getEntriesByName("board:painted")[0].startTime));
  if (i === runs - 1) {
    // Where the last run's time went: the page's marks and each request.
    boardBreakdown = await page.evaluate(() => ({
      marks: performance.getEntriesByType("mark").map((m) => [m.name, Math.round(m.startTime)]),
      requests: performance.getEntriesByType("resource").map((r) => [r.name.replace(location.origin, ""), Math.round(r.startTime), Math.round(r.duration), r.encodedBodySize]),
    }));
  }
  tiles = await page.locator("[data-service]").count();
  await page.waitForFunction((n) => document.querySelectorAll("[data-host]").length >= n, 1000, { timeout: 60000 });
  hostTiles = await page.locator("[data-host]").count();
  await ctx.close();
}

// A host page with 24 h charts: from the route change to every chart drawn.
const hostPage = [];
let charts = 0;
let points = 0;
{
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${base}/#/alerts`);
  await page.waitForSelector("main[data-ready=true]", { timeout: 60000 });
  for (let i = 0; i < runs; i++) {
    const ms = await page.evaluate(async (h) => {
      const main = document.getElementById("main");
      main.removeAttribute("data-ready");
      const t0 = performance.now();
      location.hash = `#/host/${h}?range=24h&run=${Math.random()}`;
      await new Promise((resolve) => {
        const check = () => (main.dataset.ready === "true" ? resolve() : requestAnimationFrame(check));
        check();
      });
      return performance.now() - t0;
    }, host);
    hostPage.push(ms);
  }
  charts = await page.locator(".chart").count();
  points = await page.evaluate(() => [...document.querySelectorAll(".chart")].reduce((a, el) => a + Number(el.dataset.points ?? 0), 0));
  await ctx.close();
}

// The collector's CPU with no board open, then with one open (live).
console.log("closed");
await next();
const ctx = await browser.newContext();
const page = await ctx.newPage();
await page.goto(`${base}/#/`);
await page.waitForSelector("main[data-ready=true]", { timeout: 60000 });
console.log("open");
await next();
await ctx.close();
await browser.close();

console.log(
  JSON.stringify({
    runs,
    boardMs: board.map((x) => Math.round(x)),
    boardMedianMs: Math.round(median(board)),
    boardBreakdown,
    serviceTiles: tiles,
    hostTiles,
    hostMs: hostPage.map((x) => Math.round(x)),
    hostMedianMs: Math.round(median(hostPage)),
    hostCharts: charts,
    hostPoints: points,
    assetBytes,
    consoleErrors: errors,
  }),
);
// stdin stays open (the benchmark holds it): end here.
rl.close();
process.exit(0);

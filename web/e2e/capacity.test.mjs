// The capacity page in a real browser against the real binaries
// (docs/capacity.md): an agent's statsd gauge ramps toward a declared
// limit; the page ranks it with the CLI's figures, and draws the readings
// with the fitted line projected to the threshold.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { cli, freePort, launch, missingBrowser, poll, screenshot, startAgent, startCollector, tempDir, watchConsole } from "./harness.mjs";

const host = `cap-${randomBytes(3).toString("hex")}`;

test("the capacity page ranks a filling queue as the CLI does and projects its trend to the limit", { timeout: 240000 }, async (t) => {
  const why = missingBrowser();
  if (why) return t.skip(`skipped: ${why}`);
  const dir = tempDir("capacity");
  const config = `[[capacity.limit]]\nname = "order queue"\nmetric = "order_queue_depth"\nthreshold = 500\n`;
  const collector = await startCollector(dir, config);
  const statsdPort = await freePort();
  const agent = startAgent(dir, collector.grpc, host, statsdPort);
  const udp = createSocket("udp4");
  const t0 = Date.now();
  // 20 + 5 a second: 500 at t0 + 96 s.
  const gauge = () => new Promise((r) => udp.send(`order_queue_depth:${20 + (5 * (Date.now() - t0)) / 1000}|g`, statsdPort, "127.0.0.1", r));
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = watchConsole(page);
  t.after(async () => {
    udp.close();
    await browser.close();
    await agent.stop();
    await collector.proc.stop();
  });
  await poll("10 readings of the queue", async () => {
    await gauge();
    const stored = await cli(collector.grpc, ["query", "order_queue_depth", "--since", "5m", "--step", "0"]);
    return stored.length > 0 && stored[0].points.length >= 10;
  });
  const rows = await cli(collector.grpc, ["capacity", "--host", host, "--since", "15m"]);
  const queue = rows.find((r) => r.resource === "order queue");
  assert.equal(queue.crossing, "crossing", JSON.stringify(queue));

  await page.goto(`${collector.http}/#/capacity?range=15m`);
  await page.waitForSelector("main[data-ready=true]");
  const first = page.locator("tbody tr").first();
  assert.equal(await first.getAttribute("data-resource"), "order queue", "ranked first: it runs out soonest");
  assert.equal(await first.getAttribute("data-crossing"), "crossing");
  const chart = page.locator('.chart[data-resource="order queue"]');
  assert.equal(await chart.getAttribute("data-fit"), "linear");
  const eta = Number(await chart.getAttribute("data-eta"));
  // The page fitted the same window a moment later: the same crossing,
  // within the readings' second of spread.
  assert.ok(Math.abs(eta - queue.eta_ms) < 5000, `page ${eta}, CLI ${queue.eta_ms}`);
  assert.ok(Math.abs(eta - (t0 + 96000)) < 5000, `page ${eta}, ramp ${t0 + 96000}`);
  assert.ok(Number(await chart.getAttribute("data-points")) >= 10);
  await page.waitForSelector('.chart[data-resource="order queue"] canvas');
  await screenshot(page, "capacity");
  assert.deepEqual(errors, []);
});

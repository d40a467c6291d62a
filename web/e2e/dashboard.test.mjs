// The dashboard in a real browser against the real binaries: a collector
// with a service and a rule, an agent fed through its statsd port, and the
// CLI as the independent reader. See docs/dashboard.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { cli, freePort, launch, missingBrowser, poll, screenshot, startAgent, startCollector, tempDir, tokenLine, watchConsole } from "./harness.mjs";

/** A tile's state must follow the collector within this long. */
const LIVE_MS = 2000;

const host = `shop-web-${randomBytes(3).toString("hex")}`;

const services = `
[[service]]
name = "shop"
description = "Web shop"
team = "payments"
availability_target = 99.9

[[service.contact]]
team = "payments on call"
hours = "24x7"
phone = "+44 20 7946 0000"
email = "payments-oncall@example.com"
chat = "#payments"

[[service.component]]
name = "web host"
layer = "machine"
matchers = ["host=${host}"]

[[service.component]]
name = "queue depth"
layer = "business"
metric = "shop_queue_depth"
matchers = ["host=${host}"]

[[service]]
name = "ghost"
description = "Declared, but nothing reports for it"
team = "payments"

[[service.component]]
name = "ghost smoke test"
layer = "application"
metric = "check_up"
matchers = ["check=ghost-smoke"]
`;

const rules = `
[[rule]]
name = "shop_queue_deep"
metric = "shop_queue_depth"
warning = 10
critical = 20
summary = "queue on {{host}} at {{value}}"
`;

test("the board follows a rule through amber, red and green; pages agree with the CLI; ack and silence land", { timeout: 240000 }, async (t) => {
  const why = missingBrowser();
  if (why) return t.skip(`skipped: ${why}`);
  const dir = tempDir("board");
  const collector = await startCollector(dir, `services = ["services.toml"]\nrules = ["rules.toml"]\n`, { "services.toml": services, "rules.toml": rules });
  const statsdPort = await freePort();
  let agent = startAgent(dir, collector.grpc, host, statsdPort);
  const udp = createSocket("udp4");
  const gauge = (v) => new Promise((r) => udp.send(`shop_queue_depth:${v}|g`, statsdPort, "127.0.0.1", r));
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = watchConsole(page);
  t.after(async () => {
    udp.close();
    await browser.close();
    await agent.stop();
    await collector.proc.stop();
  });

  // The agent's statsd port may not listen yet: send until the gauge is stored.
  await poll("the first gauge stored", async () => {
    await gauge(5);
    const stored = await cli(collector.grpc, ["query", "shop_queue_depth", "--since", "5m", "--step", "0"]);
    return stored.length > 0 && stored[0].points.length > 0;
  });
  await page.goto(`${collector.http}/`);
  await page.waitForSelector("main[data-ready=true]");

  // A service whose only component has no data is grey, never green.
  assert.equal(await page.getAttribute('[data-service="ghost"]', "data-state"), "unknown");
  assert.match(await page.textContent('[data-service="ghost"]'), /No data/);

  // Green once the agent's data arrives.
  await page.waitForSelector('[data-service="shop"][data-state="ok"]', { timeout: 30000 });
  await page.waitForSelector(`[data-host="${host}"][data-state="ok"]`, { timeout: 30000 });

  // When the collector's state changes, the page shows it within LIVE_MS.
  const follows = async (value, severity, state) => {
    const seen = page.waitForFunction(
      ([h, s]) => document.querySelector(`[data-service="shop"][data-state="${s}"]`) && document.querySelector(`[data-host="${h}"][data-state="${s}"]`) && Date.now(),
      [host, state],
      { polling: "raf", timeout: 30000 },
    );
    await gauge(value);
    const alert = await poll(`the ${severity} alert`, async () => (await cli(collector.grpc, ["alerts"])).find((a) => a.rule === "shop_queue_deep" && a.state === "firing" && a.severity === severity));
    const shownAt = await (await seen).jsonValue();
    const late = shownAt - alert.changed_ms;
    t.diagnostic(`${state}: shown ${late} ms after the collector's change`);
    assert.ok(late <= LIVE_MS, `the board showed ${state} ${late} ms after the change (limit ${LIVE_MS} ms)`);
    return alert;
  };
  await follows(15, "warning", "warning");
  await screenshot(page, "board-amber");
  const alert = await follows(25, "critical", "critical");
  assert.match(await page.textContent('[data-service="shop"]'), /Critical/);
  assert.match(await page.textContent(".feed"), /shop: warning → critical/);
  await screenshot(page, "board");

  // Keyboard: g a opens the alerts page.
  await page.locator("body").press("g");
  await page.locator("body").press("a");
  await page.waitForSelector("main[data-ready=true] table.alerts");
  const row = page.locator(`tr[data-alert="${alert.id}"]`);
  await row.waitFor();

  // Ack from the page, with a name and a note.
  await row.getByRole("button", { name: "Ack" }).click();
  await page.getByLabel("Your name").fill("Ada Lovelace");
  await page.getByLabel("Note").fill("draining the queue by hand");
  await page.getByRole("button", { name: "Save" }).click();
  const acked = await poll("the ack in nightjar alerts", async () => (await cli(collector.grpc, ["alerts"])).find((a) => a.id === alert.id && a.acked_by));
  assert.equal(acked.acked_by, "Ada Lovelace");
  assert.equal(acked.ack_note, "draining the queue by hand");

  // Silence from the page: matchers come from the alert's labels.
  await row.getByRole("button", { name: "Silence" }).click();
  const matchers = await page.getByLabel(/^Matchers/).inputValue();
  assert.equal(matchers, `alertname=shop_queue_deep\nhost=${host}`);
  await page.getByLabel("Comment").fill("queue consumer redeploy");
  await page.getByRole("button", { name: "Save" }).click();
  const silenced = await poll("the silence in nightjar alerts", async () => (await cli(collector.grpc, ["alerts"])).find((a) => a.id === alert.id && a.silenced_by));
  const silence = (await cli(collector.grpc, ["silence", "list"])).find((s) => silenced.silenced_by === `silence ${s.id}`);
  assert.ok(silence, `the silence named by "${silenced.silenced_by}" is listed`);
  assert.equal(silence.author, "Ada Lovelace");
  assert.equal(silence.comment, "queue consumer redeploy");
  assert.deepEqual(silence.matchers, ["alertname=shop_queue_deep", `host=${host}`]);
  await page.waitForSelector(`[data-silence="${silence.id}"]`);
  await page.waitForSelector(`tr[data-alert="${alert.id}"] >> text=acked by Ada Lovelace`);
  await screenshot(page, "alerts");

  // Back on the board, green again when the rule resolves.
  await page.getByRole("link", { name: "Board", exact: true }).first().click();
  await page.waitForSelector("main[data-ready=true] [data-service=shop]");
  const green = page.waitForFunction(
    (h) => document.querySelector(`[data-service="shop"][data-state="ok"]`) && document.querySelector(`[data-host="${h}"][data-state="ok"]`) && Date.now(),
    host,
    { polling: "raf", timeout: 30000 },
  );
  await gauge(1);
  const resolved = await poll("the resolution", async () => (await cli(collector.grpc, ["alerts", "--history", "--since", "5m"])).find((e) => e.alert_id === alert.id && e.kind === "resolved"));
  const greenAt = await (await green).jsonValue();
  t.diagnostic(`ok: shown ${greenAt - resolved.at_ms} ms after the resolution`);
  assert.ok(greenAt - resolved.at_ms <= LIVE_MS, `green ${greenAt - resolved.at_ms} ms after the resolution`);

  // Stop the agent: the data stays still, so the page and the CLI read the same points.
  await agent.stop();
  agent = { stop: async () => {} };

  // Board → service → host, by clicking.
  await page.click('[data-service="shop"]');
  await page.waitForSelector("main[data-ready=true] [data-layer=business]");
  assert.match(await page.textContent("[data-layer=business]"), /queue depth/);
  assert.match(await page.textContent("main"), /\+44 20 7946 0000/);
  // Its availability: a bar per day of the last 30, today's with the
  // outage this test made, and the budget burn-down.
  await page.waitForSelector('[data-availability="shop"] .bars');
  assert.equal(await page.locator('[data-availability="shop"] .bar').count(), 30);
  const today = await page.locator('[data-availability="shop"] .bar').last().getAttribute("title");
  assert.match(today, /min lost/, today);
  const report = await cli(collector.grpc, ["report", "availability", "--window", "1d", "--service", "shop"]);
  assert.ok(report.services[0].weighted_outage_minutes > 0, "the rule's outage is in the report");
  assert.equal(report.services[0].incidents, 1);
  // Acked on the page during the outage: the time to acknowledge is from
  // the outage's start to that ack.
  const o = report.services[0].outages[0];
  assert.ok(o.acknowledged_ms > o.start_ms && o.acknowledged_ms <= o.end_ms, JSON.stringify(o));
  assert.equal(report.services[0].acknowledged, 1);
  assert.ok(Math.abs(report.services[0].mean_minutes_to_acknowledge - (o.acknowledged_ms - o.start_ms) / 60000) < 1e-9);
  await screenshot(page, "service");
  await page.click(`.host-links a:text-is("${host}")`);
  await page.waitForSelector("main[data-ready=true] .chart");
  await screenshot(page, "host");

  for (const metric of ["load_average", "memory_used_bytes"]) {
    const chart = page.locator(`.chart[data-metrics~="${metric}"]`);
    const { query, drawn } = await chart.evaluate((el) => ({ query: JSON.parse(el.dataset.query), drawn: el.chart.drawn() }));
    assert.ok(drawn.data[0].length > 0, `${metric}: the chart has points`);
    const answer = await cli(collector.grpc, ["query", metric, "--host", host, "--since", `${query.endMs - query.startMs}ms`, "--end", String(query.endMs), "--step", `${query.stepMs}ms`, "--agg", query.agg.toLowerCase()]);
    assert.ok(answer.length > 0, `${metric}: the CLI finds series`);
    for (const s of answer) {
      const label = query.by.map((k) => s.labels[k]).filter(Boolean);
      if (query.metrics.length > 1 || label.length === 0) label.unshift(s.metric);
      const i = drawn.labels.indexOf(label.join(" "));
      assert.ok(i >= 0, `${metric}: the chart draws ${label.join(" ")} (it draws ${drawn.labels.join(", ")})`);
      const onChart = drawn.data[0].map((x, j) => [Math.round(x * 1000), drawn.data[i + 1][j]]).filter(([, v]) => v !== null);
      assert.deepEqual(onChart, s.points, `${metric} ${label.join(" ")}: the chart's points equal the query API's`);
    }
  }

  // Nightjar itself: the agents and the collector's figures.
  await page.getByRole("link", { name: "Nightjar", exact: true }).last().click();
  await page.waitForSelector("main[data-ready=true] [data-figure=ingest]");
  assert.match(await page.textContent(`[data-agent="${host}"]`), new RegExp(host));
  await screenshot(page, "nightjar");

  // A phone, in the dark theme.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto(`${collector.http}/#/`);
  await page.waitForSelector("main[data-ready=true]");
  await screenshot(page, "board-phone-dark");

  assert.deepEqual(errors, [], "no console errors on any page");
});

test("with tokens configured the page asks for a read token and then reads with it", { timeout: 120000 }, async (t) => {
  const why = missingBrowser();
  if (why) return t.skip(`skipped: ${why}`);
  const dir = tempDir("token");
  const tokens = `# role name hash\n${await tokenLine("read", "ops-board", "read-secret-web")}`;
  const collector = await startCollector(dir, `services = ["services.toml"]\n\n[auth]\ntokens_file = "tokens"\n`, { "services.toml": services, tokens });
  const browser = await launch();
  const page = await browser.newPage();
  const errors = watchConsole(page);
  t.after(async () => {
    await browser.close();
    await collector.proc.stop();
  });
  await page.goto(`${collector.http}/`);
  const dialog = page.getByRole("dialog", { name: "Read token" });
  await dialog.waitFor();
  assert.match(await page.textContent("#token-error"), /Unauthenticated/);
  await page.getByLabel("Token", { exact: true }).fill("wrong-token");
  await page.getByRole("button", { name: "Use token" }).click();
  await dialog.waitFor();
  await page.waitForFunction(() => /Unauthenticated/.test(document.getElementById("token-error").textContent));
  await page.getByLabel("Token", { exact: true }).fill("read-secret-web");
  await page.getByRole("button", { name: "Use token" }).click();
  await page.waitForSelector('main[data-ready=true] [data-service="ghost"][data-state="unknown"]');
  // Refused gRPC-web calls are answers (HTTP 200, grpc-status 16), not errors.
  assert.deepEqual(errors, []);
});

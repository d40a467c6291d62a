// The incident pages in a real browser against the real binaries
// (docs/incidents.md): an agent's gauge fires a rule, which opens an
// incident; the page shows it and what changed before it; a note, the
// acknowledgement, the review and a follow-up made on the page land in
// the collector (read back with the CLI); the follow-ups page marks the
// overdue one and changes its state; the host's charts mark the change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { cli, freePort, launch, missingBrowser, poll, screenshot, startAgent, startCollector, tempDir, watchConsole } from "./harness.mjs";

const host = `files-${randomBytes(3).toString("hex")}`;

const services = `
[[service]]
name = "files"
description = "File shares"
[[service.component]]
name = "file server"
layer = "machine"
matchers = ["host=${host}"]
`;

const rules = `
[[rule]]
name = "share_filling"
metric = "share_used_percent"
critical = 90
summary = "share {{value}}% full on {{host}}"
`;

test("an incident is run from the page: note, ack, review, follow-up; the change is marked on the charts", { timeout: 240000 }, async (t) => {
  const why = missingBrowser();
  if (why) return t.skip(`skipped: ${why}`);
  const dir = tempDir("incidents");
  const collector = await startCollector(dir, `services = ["services.toml"]\nrules = ["rules.toml"]\n\n[alerting]\nhost_down_after = 0\n`, { "services.toml": services, "rules.toml": rules });
  const statsdPort = await freePort();
  const agent = startAgent(dir, collector.grpc, host, statsdPort);
  const udp = createSocket("udp4");
  const gauge = (v) => new Promise((r) => udp.send(`share_used_percent:${v}|g`, statsdPort, "127.0.0.1", r));
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = watchConsole(page);
  t.after(async () => {
    udp.close();
    await browser.close();
    await agent.stop();
    await collector.proc.stop();
  });

  await poll("the first gauge stored", async () => {
    await gauge(50);
    const stored = await cli(collector.grpc, ["query", "share_used_percent", "--since", "5m", "--step", "0"]);
    return stored.length > 0 && stored[0].points.length > 0;
  });
  const change = await cli(collector.grpc, ["change", "add", "--what", "quota raised on the shares", "--by", "ci", "--host", host, "--risk", "high"]);
  await gauge(97);
  const opened = await poll("the incident", async () => (await cli(collector.grpc, ["incident", "list"])).find((i) => i.state === "open"));

  // The board names it, as a way in.
  await page.goto(`${collector.http}/`);
  await page.waitForSelector(`.incidents-strip a[href="#/incident/${opened.id}"]`);
  assert.match(await page.textContent(".incidents-strip"), /1 open incident: .*not acknowledged/);

  // The list.
  await page.goto(`${collector.http}/#/incidents`);
  await page.waitForSelector("main[data-ready=true]");
  const row = page.locator(`[data-incident="${opened.id}"]`);
  assert.match(await row.textContent(), /not acknowledged/);
  assert.match(await row.textContent(), /share 97% full/);

  // One incident: what changed, then a note.
  await row.locator("a").click();
  await page.waitForSelector("main[data-ready=true]");
  assert.match(await page.textContent("main h1"), new RegExp(opened.id));
  assert.match(await page.textContent(`[data-change="${change.id}"]`), /quota raised on the shares/);
  await page.fill('input[name="author"]', "Ada");
  await page.fill('textarea[aria-label="Note"]', "share cleaner restarted");
  await page.click('button:has-text("Add note")');
  await page.waitForSelector('.timeline li[data-kind="note"]:has-text("share cleaner restarted")');
  const noted = await cli(collector.grpc, ["incident", "show", opened.id]);
  assert.ok(noted.timeline.some((e) => e.kind === "note" && e.by === "Ada" && e.detail === "share cleaner restarted"), JSON.stringify(noted.timeline));

  // Acknowledge from the page: the collector acks its alert.
  await page.click('button:has-text("Acknowledge")');
  await poll("the ack in the collector", async () => (await cli(collector.grpc, ["alerts"])).some((a) => a.rule === "share_filling" && a.acked_by === "Ada"));
  await page.waitForSelector('.timeline li[data-kind="acknowledged"]');

  // The review, edited on the page.
  await page.fill('textarea[name="rootCause"]', "the cleaner's cron entry was lost in a rebuild");
  await page.selectOption('select[name="category"]', "configuration");
  await page.click('button:has-text("Save review")');
  await poll("the review in the collector", async () => {
    const r = (await cli(collector.grpc, ["incident", "show", opened.id])).incident.review;
    return r.category === "configuration" && r.root_cause === "the cleaner's cron entry was lost in a rebuild";
  });

  // A follow-up due yesterday: overdue.
  const yesterday = new Date(Date.now() - 86400e3).toISOString().slice(0, 10);
  await page.fill('input[aria-label="Action"]', "put the cleaner under config management");
  await page.fill('input[aria-label="Owner"]', "Bob");
  await page.fill('input[aria-label="Due"]', yesterday);
  await page.click('button:has-text("Add follow-up")');
  await page.waitForSelector('[data-followup="P1"]');
  await screenshot(page, "incident");

  await page.goto(`${collector.http}/#/followups`);
  await page.waitForSelector("main[data-ready=true]");
  assert.equal(await page.getAttribute('[data-followup="P1"]', "data-overdue"), "true");
  await page.selectOption('select[aria-label="State of P1"]', "in_progress");
  await poll("the new state in the collector", async () => (await cli(collector.grpc, ["problem", "list"])).follow_ups.some((f) => f.id === "P1" && f.state === "in_progress"));
  await screenshot(page, "followups");

  // The host's charts mark the change.
  await page.goto(`${collector.http}/#/host/${host}`);
  await page.waitForSelector("main[data-ready=true]");
  assert.match(await page.textContent("[data-changes]"), new RegExp(change.id));
  const marked = await page.$$eval(".chart[data-markers]", (els) => els.filter((e) => Number(e.dataset.markers) > 0).length);
  assert.ok(marked > 0, "a chart draws the change");
  assert.deepEqual(errors, []);
});

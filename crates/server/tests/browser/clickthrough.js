// Clicks through the netcost UI in Debian's Chromium with playwright-core, and prints what each
// view showed as one JSON object; the Rust test that runs it (tests/browser.rs) checks the
// figures against the API and against the bytes it put into the store. This script asserts
// nothing itself, except that each step could be taken: a missing link or a page that never
// settles fails it (non-zero exit, the reason on stderr).
//
// Usage: node clickthrough.js BASE_URL ARTIFACT_DIR
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const [base, artifacts] = process.argv.slice(2);
// Each step waits this long at most for a page to settle, so that a hung page fails the test.
const STEP_TIMEOUT_MS = 30000;
// Tab presses allowed before the keyboard test gives up looking for a control.
const MAX_TABS = 120;

async function settled(page) {
  await page.waitForFunction(() => document.body.dataset.state !== "loading", null, { timeout: STEP_TIMEOUT_MS });
  return page.evaluate(() => document.body.dataset.state);
}

// Clicks `locator`, waits for the address to change and the new page to settle.
async function follow(page, locator) {
  const before = page.url();
  await locator.click({ timeout: STEP_TIMEOUT_MS });
  await page.waitForURL((u) => u.toString() !== before, { timeout: STEP_TIMEOUT_MS });
  return settled(page);
}

const rows = (page, selector) => page.$$eval(selector, (trs) => trs.map((tr) => ({ ...tr.dataset, text: tr.innerText })));
const crumbs = (page) => page.$$eval("#breadcrumbs:not([hidden]) li", (lis) => lis.map((li) => li.innerText.trim()));
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, name), fullPage: true });

async function view(page) {
  return {
    url: page.url(),
    state: await page.evaluate(() => document.body.dataset.state),
    title: await page.title(),
    crumbs: await crumbs(page),
  };
}

// Presses Tab until `predicate` holds for the focused element; returns the presses it took.
async function tabTo(page, predicate, arg, key = "Tab") {
  for (let i = 1; i <= MAX_TABS; i++) {
    await page.keyboard.press(key);
    if (await page.evaluate(predicate, arg)) return i;
  }
  throw new Error(`no ${key} press reached the control (${predicate}) in ${MAX_TABS}`);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    // CI runs as root, where Chromium refuses its sandbox.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const errors = [];
  // Requests the server refused, by path (the test decides which it expects).
  const refused = [];
  const out = { errors, refused };
  const watch = (page) => {
    page.on("pageerror", (e) => errors.push(String(e)));
    // Chromium logs a refused request too: it is in `refused` already.
    page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text()); });
    page.on("response", (r) => { if (r.status() >= 400) refused.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  };
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    watch(page);

    // The overview.
    await page.goto(`${base}/?window=1h`);
    await settled(page);
    out.overview = {
      ...(await view(page)),
      month: await page.getAttribute("#month-cost", "data-cost"),
      rate: await page.getAttribute("#rate-cost", "data-cost"),
      saving: await page.getAttribute("#saving-total", "data-saving"),
      classes: await rows(page, "#class-rows tr"),
      changes: await page.$$eval("#changes li.change", (lis) => lis.map((li) => ({ ...li.dataset, text: li.innerText }))),
      adviceNote: await page.innerText("#advice-note"),
      namespaces: await rows(page, "#namespace-rows tr"),
      zoneCells: await page.$$eval("#zone-table td", (tds) => tds.map((td) => ({ ...td.dataset }))),
      zoneHeaders: await page.$$eval("#zone-table th", (ths) => ths.map((th) => th.getAttribute("scope"))),
      allocationLink: await page.getAttribute("#allocation-link", "href"),
    };
    await page.hover('g.zone-cell[data-client-zone="a"][data-server-zone="b"]');
    out.overview.hoverTip = await page.innerText("#zone-tip");
    await shot(page, "overview.png");

    // Overview → namespace → workload → pod → peers, by clicking.
    await follow(page, page.locator("#namespace-rows a", { hasText: /^shop$/ }));
    out.namespace = { ...(await view(page)), heading: await page.innerText("#table-title"), rows: await rows(page, "#rows tr") };
    await shot(page, "drill-namespace.png");
    await follow(page, page.locator("#rows a", { hasText: "shop/Deployment/web" }));
    out.workload = { ...(await view(page)), heading: await page.innerText("#table-title"), rows: await rows(page, "#rows tr") };
    await follow(page, page.locator("#rows a", { hasText: "shop/web-0" }));
    out.pod = {
      ...(await view(page)),
      heading: await page.innerText("#peers-title"),
      note: await page.innerText("#peers-note"),
      rows: await rows(page, "#peer-rows tr"),
      total: await page.getAttribute("#peer-total", "data-cost"),
    };
    await shot(page, "drill-pod-peers.png");
    // A breadcrumb leads back up to the namespace's workloads.
    await follow(page, page.locator("#breadcrumbs a", { hasText: /^shop$/ }));
    out.back = await view(page);
    // And the edges page, from the navigation.
    await follow(page, page.locator("#nav-edges"));
    out.edges = {
      ...(await view(page)),
      rows: await rows(page, "#edge-rows tr"),
      others: await rows(page, "#other-edge-rows tr"),
      othersOpen: await page.evaluate(() => document.getElementById("other-edges-details").open),
    };
    await shot(page, "cross-zone.png");

    // The keyboard alone: Tab to a zone cell (its figures show), back to the namespace link,
    // Enter; then sort a column with Enter, and open the folded edges with Enter.
    const keys = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    watch(keys);
    await keys.goto(`${base}/?window=1h`);
    await settled(keys);
    const k = {};
    k.tabsToZoneCell = await tabTo(keys, () => document.activeElement.classList.contains("zone-cell"));
    k.zoneTip = await keys.innerText("#zone-tip");
    k.tabsBackToNamespace = await tabTo(keys, () => document.activeElement.matches("#namespace-rows a") && document.activeElement.textContent === "shop", null, "Shift+Tab");
    const before = keys.url();
    await keys.keyboard.press("Enter");
    await keys.waitForURL((u) => u.toString() !== before, { timeout: STEP_TIMEOUT_MS });
    await settled(keys);
    k.afterEnter = await view(keys);
    k.tabsToSort = await tabTo(keys, () => document.activeElement.matches('button.sort[data-key="name"]'));
    k.sortBefore = await keys.getAttribute('th[data-key="name"]', "aria-sort");
    await keys.keyboard.press("Enter");
    k.sortAfter = await keys.getAttribute('th[data-key="name"]', "aria-sort");
    k.rowsAfterSort = await keys.$$eval("#rows tr", (trs) => trs.map((tr) => tr.dataset.name));
    await keys.goto(`${base}/?view=edges&window=1h`);
    await settled(keys);
    k.tabsToSummary = await tabTo(keys, () => document.activeElement.id === "other-edges-summary");
    await keys.keyboard.press("Enter");
    k.detailsOpen = await keys.evaluate(() => document.getElementById("other-edges-details").open);
    out.keyboard = k;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(`clickthrough: ${e.stack || e}\n`);
  process.exit(1);
});

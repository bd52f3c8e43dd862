// Drives soundlake's web UI in a real browser (Debian's chromium, through
// Playwright) the way a person would, and prints what the pages showed as
// JSON for tests/it/ui.rs to check against `soundlake query`.
//
// usage: node drive.mjs <base URL> <screenshot folder> <track id> <shared title>
//
// It opens every page, takes a screenshot of each, clicks from the failed
// run to its failed task's error and from gold.dim_track to a table it
// reads, searches the track and reads its neighbours.

import { chromium } from "playwright-core";

const [base, shots, track, shared] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const seen = { pages: {}, html: [] };

// Open `path`, wait for it, note how long the server took to answer and
// keep its HTML (the test greps every page for secrets).
async function open(path, name) {
  const response = await page.goto(base + path);
  if (!response.ok()) throw new Error(`${path}: HTTP ${response.status()}`);
  await shoot(name);
  return response;
}

async function shoot(name) {
  const answered = await page.evaluate(() => {
    const t = performance.getEntriesByType("navigation")[0];
    return t.responseEnd - t.requestStart;
  });
  seen.pages[name] = { url: page.url(), answered_ms: answered };
  seen.html.push(await page.content());
  const whole = ["run", "charts", "similar"].includes(name);
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: whole });
}

// Runs: the failed run, then its failed task's error.
await open("/ui/runs", "runs");
const failedRun = page.locator("tr", { has: page.locator("td.failed") }).first().locator("a");
seen.failed_run = await failedRun.innerText();
await failedRun.click();
await page.waitForLoadState();
await shoot("run");
const failedTask = page.locator("svg.timeline g.task[data-status=failed]").first();
seen.failed_task = await failedTask.getAttribute("data-task");
await failedTask.locator("a").click();
seen.error_url = page.url();
seen.error = await page.locator(`[id="error-${seen.failed_task}"] + pre`).innerText();
seen.error_visible = await page.locator(`[id="error-${seen.failed_task}"]`).isVisible();

// Tables: the list, gold.dim_track, and the first table it reads.
await open("/ui/tables", "tables");
await page.getByRole("link", { name: "gold.dim_track", exact: true }).click();
await page.waitForLoadState();
await shoot("table");
seen.dim_track_rows = Number(await page.locator("#rows").innerText());
seen.dim_track_columns = await page.locator("table.columns tr td:first-child").allInnerTexts();
seen.dim_track_builds = await page.locator("table.builds tr td:last-child").allInnerTexts();
const upstream = page.locator("p.upstream a").first();
seen.upstream_clicked = await upstream.innerText();
await upstream.click();
await page.waitForLoadState();
seen.upstream_url = page.url();
seen.upstream_heading = await page.locator("h1").innerText();

// Charts: every figure's bars and the SQL it shows.
await open("/ui/charts", "charts");
seen.charts = [];
for (const figure of await page.locator("figure").all()) {
  const bars = [];
  for (const bar of await figure.locator("g.bar").all()) {
    bars.push([await bar.getAttribute("data-label"), Number(await bar.getAttribute("data-value"))]);
  }
  const cells = await figure.locator("rect title").allTextContents();
  seen.charts.push({
    title: await figure.getAttribute("data-title"),
    sql: await figure.locator("pre.sql").textContent(),
    bars,
    cells: cells.length,
  });
}

// Similar tracks: type the track into the search box.
await open("/ui/similar", "similar-empty");
await page.locator("input[name=q]").fill(track);
await page.locator("button[type=submit]").click();
await page.waitForLoadState();
await shoot("similar");
seen.similar_track = await page.locator("h2.track").innerText();
const ids = async (section) =>
  page.locator(`section.${section} table tr td:last-child`).allInnerTexts();
seen.by_sound = await ids("by-Sound");
seen.by_listening = await ids("by-Listening");

// A title several tracks share: the candidates, each a link to its own.
await page.goto(`${base}/ui/similar?q=${encodeURIComponent(shared)}`);
seen.candidates = await page.locator("ul.candidates a").allInnerTexts();
await page.locator("ul.candidates a").first().click();
await page.waitForLoadState();
seen.candidate_track = await page.locator("h2.track").innerText();

await browser.close();
console.log(JSON.stringify(seen));

/**
 * The report in a real browser: Debian's Chromium, driven by playwright-core (no browser
 * download; `executablePath` is the system binary), opens a report made by a tiny synthetic demo
 * run, checks that the charts, tables and images are there and not empty, that the page asks the
 * network for nothing, and saves a screenshot.
 *
 *   deno task test:browser        # CHROMIUM=/path/to/chromium to use another binary
 *
 * Named without `_test` so that `deno task test` (which cannot assume a browser) does not pick
 * it up; CI installs `chromium` and runs this task on its own. The task runs with --allow-all:
 * playwright-core probes `/proc/sys/fs/binfmt_misc/WSLInterop` when it loads, which Deno only
 * allows with full access. Without a browser it fails with a
 * message naming the package, rather than passing silently.
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { runDemo } from "../../scripts/demo.ts";
import { chromiumPath, OUT } from "./_chromium.ts";

let reportPath: string | undefined;

async function report(): Promise<string> {
  if (reportPath) return reportPath;
  const r = await runDemo({ quick: true, out: `${OUT}/run`, quiet: true, log: () => {} });
  reportPath = resolve(r.reportPath);
  return reportPath;
}

/** Every URL the page asked for, other than itself and inline data: images. */
function watchRequests(page: import("playwright-core").Page, self: string): string[] {
  const seen: string[] = [];
  page.on("request", (r) => {
    const u = r.url();
    if (u !== self && !u.startsWith("data:")) seen.push(u);
  });
  return seen;
}

Deno.test({
  name: "the report opens in Chromium with charts, tables and images, and fetches nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const exe = await chromiumPath();
    const path = await report();
    const url = `file://${path}`;
    const browser = await chromium.launch({ executablePath: exe });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const requests = watchRequests(page, url);
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(m.text());
      });
      page.on("pageerror", (e) => problems.push(String(e)));
      await page.goto(url, { waitUntil: "load" });

      for (const id of ["chart-rounds", "chart-roc"]) {
        const chart = page.locator(`svg#${id}`);
        assert.equal(await chart.count(), 1, `${id} is on the page`);
        assert.ok(await chart.locator("path.series").count() >= 1, `${id} draws a line`);
        assert.equal(await chart.locator(".no-data").count(), 0, `${id} has data`);
        const box = await chart.boundingBox();
        assert.ok(box && box.width > 100 && box.height > 100, `${id} is laid out`);
      }
      for (const id of ["summary", "rounds", "detection", "samples", "timings", "inputs"]) {
        const rows = page.locator(`table#${id} tr`);
        assert.ok(await rows.count() >= 2, `table ${id} has rows`);
        const text = (await page.locator(`table#${id}`).innerText()).trim();
        assert.ok(text.length > 10, `table ${id} has text`);
      }
      const summary = await page.locator("table#summary").innerText();
      assert.match(summary, /\d+\.\d%/, "the summary shows figures");
      // Every image decoded (a broken data URI has naturalWidth 0).
      const sizes = await page.locator("img").evaluateAll((els) =>
        els.map((e) => (e as unknown as { naturalWidth: number }).naturalWidth)
      );
      assert.ok(sizes.length >= 8 + 1, `sample and flagged images (${sizes.length})`);
      assert.ok(sizes.every((w) => w > 0), `every image decodes: ${sizes}`);
      assert.ok(await page.locator("#flagged img").count() >= 1, "flagged images are shown");

      await Deno.mkdir(OUT, { recursive: true });
      const shot = resolve(OUT, "report.png");
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`screenshot: ${shot}\nreport: ${path}`);

      assert.deepEqual(requests, [], "the page made no network request");
      assert.deepEqual(problems, [], "no console errors (a CSP violation would be one)");
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name: "the request watch sees a fetch when a page makes one (so an empty list means none)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const browser = await chromium.launch({ executablePath: await chromiumPath() });
    try {
      const page = await browser.newPage();
      const requests = watchRequests(page, "about:blank");
      // Answer the request in-process so nothing leaves the machine.
      await page.route("http://purifier.invalid/**", (r) => r.fulfill({ status: 404, body: "" }));
      await page.setContent(`<img src="http://purifier.invalid/x.png">`, { waitUntil: "load" });
      assert.deepEqual(requests, ["http://purifier.invalid/x.png"]);
    } finally {
      await browser.close();
    }
  },
});

/**
 * `/docs` in a real browser: Debian's Chromium, driven by playwright-core (the system binary,
 * nothing downloaded), with JavaScript OFF, loads the page from a live service and checks that
 * every endpoint has its section, its curl example and its tables; that the attack's `params`
 * fields are listed with type, bounds and default; that nothing overflows the page on a desktop
 * or a phone-sized window (no table wider than its column, no page-wide horizontal scroll); and
 * that the page fetches nothing. It saves screenshots and prints their paths.
 *
 *   deno task test:browser        # CHROMIUM=/path/to/chromium to use another binary
 *
 * Named without `_test`, as `report_browser.ts` is: `deno task test` cannot assume a browser.
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { chromiumPath, OUT } from "./_chromium.ts";

interface Box {
  width: number;
  x: number;
}

Deno.test({
  name: "/docs reads without scripts: every endpoint, its example and tables, nothing overflows",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const exe = await chromiumPath();
    const app = createApp({ config: loadConfig({ LOG_REQUESTS: "false" }) });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const doc = await (await fetch(`${base}/openapi.json`)).json();
    const ops = Object.entries(doc.paths as Record<string, object>).flatMap(([p, m]) =>
      Object.keys(m).map((k) => `${k} ${p}`)
    );
    const browser = await chromium.launch({ executablePath: exe });
    try {
      await Deno.mkdir(OUT, { recursive: true });
      const shots: string[] = [];
      for (const [label, width] of [["desktop", 1280], ["phone", 390]] as const) {
        const context = await browser.newContext({
          javaScriptEnabled: false,
          viewport: { width, height: 900 },
        });
        const page = await context.newPage();
        const requests: string[] = [];
        page.on("request", (r) => {
          if (r.url() !== `${base}/docs`) requests.push(r.url());
        });
        const res = await page.goto(`${base}/docs`, { waitUntil: "load" });
        assert.equal(res?.status(), 200);
        assert.match(res?.headers()["content-security-policy"] ?? "", /default-src 'none'/);

        const sections = page.locator("main > section[id^='get-'], main > section[id^='post-']");
        assert.equal(await sections.count(), ops.length, `one section per operation: ${ops}`);
        for (let i = 0; i < ops.length; i++) {
          const s = sections.nth(i);
          const name = await s.locator("h2").innerText();
          assert.ok(await s.locator("pre.ex").count() >= 1, `${name} has a curl example`);
          assert.match(await s.locator("pre.ex").first().innerText(), /curl /, name);
        }

        const attack = page.locator("section#post-v1-attacks");
        const pgd = attack.locator("table.fields", { hasText: "with attack: pgd" });
        assert.equal(await pgd.count(), 1, "a fields table for attack: pgd");
        const eps = pgd.locator("tr", {
          has: page.locator("td:first-child code", { hasText: /^eps$/ }),
        });
        const epsText = await eps.innerText();
        assert.match(epsText, /number/, "eps's type");
        assert.match(epsText, /0 < x ≤ 1/, "eps's bounds");
        assert.match(epsText, /8\/255/, "eps's default as a fraction of 255");
        const reply = attack.locator("table.parts", { hasText: "Reply" });
        assert.match(await reply.innerText(), /adversarial[\s\S]*application\/x-npy/);

        // No page-wide horizontal scroll, and no table wider than the column it sits in.
        const page_ = await page.locator("html").boundingBox();
        assert.ok(page_ && page_.width <= width + 1, `${label}: page is ${page_?.width}px wide`);
        const tables = page.locator("table");
        const n = await tables.count();
        let widest = 0;
        for (let i = 0; i < n; i++) {
          const t = (await tables.nth(i).boundingBox()) as Box;
          widest = Math.max(widest, t.x + t.width);
        }
        const main = (await page.locator("main").boundingBox()) as Box;
        assert.ok(
          widest <= main.x + main.width + 1,
          `${label}: the widest table ends at ${widest}px, the column at ${main.x + main.width}px`,
        );
        const pres = page.locator("pre");
        for (let i = 0; i < await pres.count(); i++) {
          const p = (await pres.nth(i).boundingBox()) as Box;
          assert.ok(p.x + p.width <= main.x + main.width + 1, `${label}: pre ${i} overflows`);
        }

        const shot = resolve(OUT, `docs-${label}.png`);
        await page.screenshot({ path: shot, fullPage: label === "desktop" });
        shots.push(shot);
        const section = resolve(OUT, `docs-${label}-attacks.png`);
        await attack.screenshot({ path: section });
        shots.push(section);
        assert.deepEqual(requests, [], `${label}: the page fetched nothing`);
        await context.close();
      }
      console.log(`screenshots: ${shots.join(" ")}`);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

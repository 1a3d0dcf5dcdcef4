import assert from "node:assert/strict";
import { join } from "node:path";
import type { ReportData } from "../../client/report_data.ts";
import { runDemo } from "../../scripts/demo.ts";

Deno.test({
  name: "runDemo() --quick goes through every endpoint and writes a complete report",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "purifier_demo_" });
    try {
      const lines: string[] = [];
      const r = await runDemo({ quick: true, out, quiet: true, log: (l) => lines.push(l) });
      assert.equal(r.dataset, "synthetic");
      assert.match(lines[0], /smoke test .* figures mean nothing/, "--quick says what it is first");
      assert.ok(lines.some((l) => l.startsWith("dataset: synthetic")), "it says which dataset");
      assert.ok(r.outcome.done, "the quick schedule finishes");
      assert.match(r.table, /clean accuracy\s+\d+\.\d%\s+\d+\.\d%/);
      assert.match(r.table, /AUROC \d\.\d{3}/);
      assert.match(r.table, /wall time: \d+ s/);

      const data: ReportData = JSON.parse(
        await Deno.readTextFile(join(out, "purify", "report.json")),
      );
      assert.equal(data.points.length, r.outcome.rounds + 1, "round 0 is the infected model");
      assert.ok(data.points.every((p) => typeof p.clean_accuracy === "number"));
      assert.ok(data.points.every((p) => typeof p.robust_accuracy === "number"));
      assert.ok(data.detection && data.detection.roc.length > 2);
      assert.equal(typeof data.detection.metrics?.auroc, "number");
      assert.equal(data.samples?.items.length, 8);
      assert.ok(data.samples.items.every((s) => s.triggered && s.adversarial.after !== undefined));
      assert.equal(data.backend, Deno.env.get("BACKEND") ?? "wasm");
      assert.ok(data.timings.total > 0);

      const html = await Deno.readTextFile(r.reportPath);
      assert.ok(html.includes('id="chart-rounds"') && html.includes('id="chart-roc"'));
      assert.equal(
        (html.match(/<img /g) ?? []).length,
        8 * 4 + data.detection.flagged_images.length,
      );
      assert.ok(!/\b(src|href)="(?!data:image\/png;base64,)/.test(html), "nothing to fetch");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

/**
 * `/docs` from the document's schemas: the tables' cells (type, bounds, default), that every part
 * and every params field has a description, and that text from the document cannot inject markup.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import {
  bounds,
  fieldRows,
  formatNumber,
  renderDocs,
  typeLabel,
} from "../../src/http/docs_page.ts";
import { buildOpenApi, jsonSchema } from "../../src/http/openapi.ts";
import { testApp } from "../_helpers.ts";

Deno.test("numbers read as people write them: 8/255 for a budget, 0.2 for a share", () => {
  assert.equal(formatNumber(8 / 255), "8/255 (0.0314)");
  assert.equal(formatNumber(6 / 255), "6/255 (0.0235)");
  assert.equal(formatNumber(0.2), "0.2");
  assert.equal(formatNumber(0.012), "0.012");
  assert.equal(formatNumber(128), "128");
  assert.equal(formatNumber(1 / 3), "0.333333");
});

Deno.test("a field's type, bounds and default come from its zod schema", () => {
  const s = jsonSchema(
    z.object({
      eps: z.number().gt(0).max(1).default(8 / 255).describe("budget"),
      steps: z.int().min(1).max(1000).default(10).describe("steps"),
      seed: z.int().min(0).optional().describe("seed"),
      norm: z.enum(["linf", "l2"]).default("linf").describe("norm"),
      target: z.union([z.int().min(0), z.array(z.int().min(0)).min(1)]).optional().describe("t"),
      name: z.string().min(1).max(40).regex(/^[a-z]+$/).describe("name"),
      mean: z.array(z.number()).min(1).max(4).describe("mean"),
      backdoor: z.object({ target: z.int().min(0).max(9).describe("class") }).describe("b"),
    }).strict(),
  ) as Parameters<typeof fieldRows>[0];
  const rows = Object.fromEntries(fieldRows(s).map((r) => [r.name, r]));
  assert.deepEqual(
    [rows.eps.type, rows.eps.bounds, rows.eps.default, rows.eps.required],
    ["number", "0 < x ≤ 1", "8/255 (0.0314)", false],
  );
  assert.deepEqual([rows.steps.type, rows.steps.bounds, rows.steps.default], [
    "integer",
    "1 ≤ x ≤ 1000",
    "10",
  ]);
  assert.equal(rows.seed.bounds, "0 ≤ x", "the safe-integer maximum zod adds is not shown");
  assert.equal(rows.norm.type, '"linf" | "l2"');
  assert.equal(rows.target.type, "integer | array of integer");
  assert.equal(rows.name.bounds, "length 1-40, matches ^[a-z]+$");
  assert.equal(rows.mean.bounds, "1-4 items");
  assert.equal(rows["backdoor.target"].bounds, "0 ≤ x ≤ 9", "nested fields get dotted names");
  assert.equal(rows.name.required, true);
  assert.equal(typeLabel({ type: "string", format: "binary" }), "file");
  assert.equal(bounds({ type: "number" }), "");
});

Deno.test("/docs lists every part and every params field with a description", async () => {
  const app = await testApp();
  const doc = await (await app.request("/openapi.json")).json();
  const html = await (await app.request("/docs")).text();
  let fields = 0;
  for (
    const [path, methods] of Object.entries<Record<string, Record<string, unknown>>>(doc.paths)
  ) {
    for (const [method, op] of Object.entries<Record<string, unknown>>(methods)) {
      assert.ok(
        html.includes(
          `id="${method}-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}"`,
        ),
      );
      const form = (op.requestBody as {
        content: Record<
          string,
          { schema: { properties: Record<string, { description?: string; oneOf?: unknown[] }> } }
        >;
      } | undefined)
        ?.content["multipart/form-data"];
      for (const [name, part] of Object.entries(form?.schema.properties ?? {})) {
        assert.ok(part.description, `${method} ${path} part ${name}`);
        if (name !== "params") continue;
        const variants = (part.oneOf ?? [part]) as Parameters<typeof fieldRows>[0][];
        for (const v of variants) {
          for (const r of fieldRows(v)) {
            fields++;
            assert.ok(r.description, `${method} ${path} params.${r.name} has no description`);
            assert.ok(r.type && r.type !== "any" || r.name.endsWith("details"), r.name);
          }
        }
      }
    }
  }
  assert.ok(fields > 150, `${fields} params fields`);
  assert.doesNotMatch(html, /<script|<link|src="http|@import/);
});

Deno.test("text from the document is escaped: a description cannot inject markup", () => {
  const hostile = '<script>alert(1)</script>"><img src=x onerror=alert(1)>';
  const doc = buildOpenApi([{
    method: "post",
    path: "/v1/x<script>",
    summary: hostile,
    description: `\`${hostile}\``,
    parts: [{
      name: "params",
      description: hostile,
      schema: z.object({ a: z.int().describe(hostile) }),
    }],
  }], "0<b>");
  const html = renderDocs(doc);
  assert.doesNotMatch(html, /<script>|<img /);
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
});

import assert from "node:assert/strict";
import fc from "fast-check";
import { blobOf, engineTensors, errorCode, fixtureForm, testApp } from "../_helpers.ts";
import { Outcomes, params } from "./_fuzz.ts";

/** A value nested `depth` deep, alternating arrays and objects as `shape` says. */
function deepValue(depth: number, shape: boolean[]): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = shape[i % shape.length] ? [v] : { k: v };
  return v;
}

Deno.test({
  name: "a deep value anywhere in params or state is a 400 from the HTTP layer, never a 5xx",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const app = await testApp();
    const before = engineTensors(app);
    const seen = new Outcomes("deep json parts");
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 65, max: 20_000 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
        fc.constantFrom("params-predict", "params-attacks", "state"),
        async (depth, shape, where) => {
          const deep = deepValue(depth, shape);
          let res: Response;
          if (where === "state") {
            const f = fixtureForm({ labels: true, params: { max_steps: 1 } });
            f.append("state", blobOf(new TextEncoder().encode(JSON.stringify({ events: [deep] }))));
            res = await app.request("/v1/purify/rounds", { method: "POST", body: f });
          } else if (where === "params-attacks") {
            const f = fixtureForm({ labels: true, params: { attack: "fgsm", extra: deep } });
            res = await app.request("/v1/attacks", { method: "POST", body: f });
          } else {
            const f = fixtureForm({ params: { top_k: 1, x: deep } });
            res = await app.request("/v1/predict", { method: "POST", body: f });
          }
          seen.add(res.status);
          assert.equal(await errorCode(res, 400), "malformed_input", `${where} at depth ${depth}`);
        },
      ),
      params(12),
    );
    seen.report();
    // The refusals happen before the engine; it still serves, with no tensor left behind.
    const ok = await app.request("/v1/predict", {
      method: "POST",
      body: fixtureForm({ params: { top_k: 1 } }),
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    assert.equal(engineTensors(app), before);
  },
});

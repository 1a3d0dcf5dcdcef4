/** No NaN or infinity behind a 200: non-finite model outputs are a 422 `non_finite` naming where. */
import assert from "node:assert/strict";
import { blobOf, engineTensors, errorCode, fixtureBytes, testApp } from "../_helpers.ts";
import { assertFiniteJson, assertFiniteWeights } from "../../src/engine/finite.ts";
import { NonFiniteError } from "../../src/errors.ts";

/** The fixture model with its dense layer scaled to ±3e38: its logits overflow to ±Infinity. */
function overflowingForm(extra: [string, Blob | string, string?][] = []): FormData {
  const doc = JSON.parse(new TextDecoder().decode(fixtureBytes("model.json")));
  const specs: { name: string; shape: number[] }[] = doc.weightsManifest[0].weights;
  const w = new Float32Array(fixtureBytes("weights.bin").slice().buffer);
  let at = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.name.startsWith("dense/")) {
      for (let i = 0; i < n; i++) w[at + i] = (i % 2 ? -1 : 1) * 3e38;
    }
    at += n;
  }
  const f = new FormData();
  f.append("model", blobOf(fixtureBytes("model.json")), "model.json");
  f.append("weights", blobOf(new Uint8Array(w.buffer)), "weights.bin");
  f.append("images", blobOf(fixtureBytes("x.npy")), "x.npy");
  for (const [k, v, name] of extra) {
    if (typeof v === "string") f.append(k, v);
    else f.append(k, v, name);
  }
  return f;
}

Deno.test("a model whose logits overflow gets a 422 non_finite from predict, not nulls", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const res = await app.request("/v1/predict", {
    method: "POST",
    body: overflowingForm([["params", '{"logits":true}']]),
  });
  const body = await res.clone().json();
  assert.equal(await errorCode(res, 422), "non_finite");
  assert.match(body.error.details.where, /logits/);
  assert.equal(engineTensors(app), before, "the guard's probe is freed");
});

Deno.test("attacks and evaluate refuse the same model with non_finite", async () => {
  const app = await testApp();
  const labels = blobOf(fixtureBytes("y.npy"));
  const attack = await app.request("/v1/attacks", {
    method: "POST",
    body: overflowingForm([["labels", labels, "y.npy"], [
      "params",
      '{"attack":"pgd","eps":0.05,"steps":2}',
    ]]),
  });
  assert.equal(await errorCode(attack, 422), "non_finite");
  const evaluate = await app.request("/v1/evaluate", {
    method: "POST",
    body: overflowingForm([["labels", labels, "y.npy"]]),
  });
  assert.equal(await errorCode(evaluate, 422), "non_finite");
});

Deno.test("assertFiniteJson names the first non-finite number by its path", () => {
  assertFiniteJson({ a: [1, 2, { b: 0 }], c: null }, "report");
  assert.throws(
    () => assertFiniteJson({ a: [1, { b: NaN }] }, "report"),
    (e: NonFiniteError) => e.status === 422 && /report\.a\[1\]\.b/.test(e.message),
  );
  assert.throws(() => assertFiniteJson([Infinity], "scores"), /scores\[0\]/);
});

Deno.test("assertFiniteWeights names the weight that is not finite", () => {
  const modelJson = new TextEncoder().encode(JSON.stringify({
    weightsManifest: [{
      paths: ["weights.bin"],
      weights: [{ name: "a/kernel", shape: [2], dtype: "float32" }, {
        name: "b/bias",
        shape: [2],
        dtype: "float32",
      }],
    }],
  }));
  const ok = new Float32Array([1, 2, 3, 4]);
  assertFiniteWeights({ modelJson, weights: [{ name: "w", bytes: new Uint8Array(ok.buffer) }] });
  const bad = new Float32Array([1, 2, 3, NaN]);
  assert.throws(
    () =>
      assertFiniteWeights({
        modelJson,
        weights: [{ name: "w", bytes: new Uint8Array(bad.buffer) }],
      }),
    (e: NonFiniteError) => e.code === "non_finite" && /b\/bias/.test(e.message),
  );
});

Deno.test("a purification round on a model with non-finite logits fails with 422 and returns no weights", async () => {
  const app = await testApp();
  const res = await app.request("/v1/purify/rounds", {
    method: "POST",
    body: overflowingForm([["labels", blobOf(fixtureBytes("y.npy")), "y.npy"], [
      "params",
      '{"max_steps":2}',
    ]]),
  });
  assert.equal(await errorCode(res, 422), "non_finite");
});

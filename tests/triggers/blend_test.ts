import assert from "node:assert/strict";
import { blendPattern } from "../../src/triggers/blend.ts";
import { applyTrigger, BlendSpecSchema, parseTriggerSpec } from "../../src/triggers/trigger.ts";

Deno.test("Blend equals (1 − alpha)·x + alpha·pattern for every pixel", () => {
  const [n, h, w, c] = [3, 5, 4, 2];
  const x = Float32Array.from({ length: n * h * w * c }, (_, i) => (i % 13) / 12);
  const spec = parseTriggerSpec({ type: "blend", alpha: 0.2, seed: 7 });
  const out = applyTrigger(spec, { data: x, shape: [n, h, w, c] });
  const p = blendPattern(7, h, w, c);
  for (let i = 0; i < x.length; i++) {
    const want = 0.8 * x[i] + 0.2 * p[i % p.length];
    assert.ok(Math.abs(out[i] - want) < 1e-6, `pixel ${i}: ${out[i]} vs ${want}`);
  }
});

Deno.test("Blend defaults to alpha 0.1 and a noise pattern that is reproducible from its seed", () => {
  const spec = BlendSpecSchema.parse({ type: "blend" });
  assert.equal(spec.alpha, 0.1);
  assert.deepEqual(blendPattern(3, 4, 4, 1), blendPattern(3, 4, 4, 1));
  assert.notDeepEqual(blendPattern(3, 4, 4, 1), blendPattern(4, 4, 4, 1));
  const p = blendPattern(5, 28, 28, 1);
  assert.ok(p.every((v) => v >= 0 && v < 1));
  const mean = p.reduce((a, b) => a + b, 0) / p.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `uniform noise has mean about 0.5, got ${mean}`);
});

Deno.test("Blend keeps pixels in [0,1]", () => {
  const x = Float32Array.from({ length: 64 }, (_, i) => (i % 2 ? 1 : 0));
  const out = applyTrigger(parseTriggerSpec({ type: "blend", alpha: 1 }), {
    data: x,
    shape: [1, 8, 8, 1],
  });
  assert.ok(out.every((v) => v >= 0 && v <= 1));
});

import assert from "node:assert/strict";
import { applyTrigger, parseTriggerSpec, WaNetSpecSchema } from "../../src/triggers/trigger.ts";
import { wanetSamplingGrid } from "../../src/triggers/wanet.ts";
import { Rng } from "../../src/random/rng.ts";
import type { ImageBatch } from "../../src/io/images.ts";

function noise(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.next());
}

Deno.test("WaNet with strength 0 is exactly the identity", () => {
  const x = noise(2 * 9 * 11 * 3, 1);
  const out = applyTrigger(parseTriggerSpec({ type: "wanet", strength: 0, seed: 5 }), {
    data: x,
    shape: [2, 9, 11, 3],
  });
  assert.deepEqual(out, x);
});

Deno.test("WaNet is deterministic per seed and differs between seeds", () => {
  const x = noise(16 * 16, 2);
  const batch: ImageBatch = { data: x, shape: [1, 16, 16, 1] };
  const a = applyTrigger(parseTriggerSpec({ type: "wanet", seed: 3 }), batch);
  const b = applyTrigger(parseTriggerSpec({ type: "wanet", seed: 3 }), batch);
  const c = applyTrigger(parseTriggerSpec({ type: "wanet", seed: 4 }), batch);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.notDeepEqual(a, x, "the default warp changes a noisy image");
});

Deno.test("WaNet keeps pixels in [0,1] and leaves a constant image constant", () => {
  const strong = parseTriggerSpec({ type: "wanet", strength: 8, k: 3, seed: 9 });
  const out = applyTrigger(strong, { data: noise(3 * 12 * 12, 4), shape: [3, 12, 12, 1] });
  assert.ok(out.every((v) => v >= 0 && v <= 1));
  const flat = applyTrigger(strong, {
    data: new Float32Array(144).fill(0.3),
    shape: [1, 12, 12, 1],
  });
  assert.ok(flat.every((v) => Math.abs(v - 0.3) < 1e-6));
});

Deno.test("WaNet's default field moves pixels by a fraction of a pixel, inside the image", () => {
  const spec = WaNetSpecSchema.parse({ type: "wanet", seed: 1 });
  assert.equal(spec.k, 4);
  assert.equal(spec.strength, 0.5);
  const { x, y } = wanetSamplingGrid(spec, 28, 28);
  let sum = 0;
  for (let i = 0; i < 28; i++) {
    for (let j = 0; j < 28; j++) {
      const p = i * 28 + j;
      assert.ok(x[p] >= 0 && x[p] <= 27 && y[p] >= 0 && y[p] <= 27);
      const d = Math.hypot(x[p] - j, y[p] - i);
      assert.ok(d < 2, `displacement ${d} at (${i}, ${j})`);
      sum += d;
    }
  }
  const mean = sum / (28 * 28);
  assert.ok(mean > 0.05 && mean < 1, `mean displacement ${mean} px`);
});

import assert from "node:assert/strict";
import { sigRow } from "../../src/triggers/sig.ts";
import { applyTrigger, parseTriggerSpec, SigSpecSchema } from "../../src/triggers/trigger.ts";

Deno.test("SIG adds Δ·sin(2π·j·f/W) to every row and channel, then clamps to [0,1]", () => {
  const [n, h, w, c] = [2, 3, 12, 2];
  const x = Float32Array.from({ length: n * h * w * c }, (_, i) => (i % 11) / 10);
  const spec = parseTriggerSpec({ type: "sig", delta: 0.1, frequency: 3 });
  const out = applyTrigger(spec, { data: x, shape: [n, h, w, c] });
  for (let i = 0; i < x.length; i++) {
    const j = Math.floor(i / c) % w;
    const want = Math.min(1, Math.max(0, x[i] + 0.1 * Math.sin((2 * Math.PI * j * 3) / w)));
    assert.ok(Math.abs(out[i] - want) < 1e-6, `value ${i}: ${out[i]} vs ${want}`);
  }
  assert.ok(out.every((v) => v >= 0 && v <= 1));
});

Deno.test("SIG defaults to the paper's Δ = 20/255 and f = 6, and its row has mean 0", () => {
  const spec = SigSpecSchema.parse({ type: "sig" });
  assert.equal(spec.delta, 20 / 255);
  assert.equal(spec.frequency, 6);
  const row = sigRow(spec, 28);
  assert.ok(Math.abs(row.reduce((a, b) => a + b, 0)) < 1e-4, "whole periods sum to zero");
  assert.ok(Math.abs(Math.max(...row) - 20 / 255) < 0.01);
});

Deno.test("SIG specs out of bounds are refused", () => {
  assert.throws(() => parseTriggerSpec({ type: "sig", delta: 0 }));
  assert.throws(() => parseTriggerSpec({ type: "sig", frequency: -1 }));
  assert.throws(() => parseTriggerSpec({ type: "sig", extra: 1 }));
});

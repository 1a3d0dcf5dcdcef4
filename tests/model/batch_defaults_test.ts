import assert from "node:assert/strict";
import {
  BATCH_MAXIMA,
  batchDefaultText,
  CPU_BATCH_DEFAULTS,
  defaultBatchSize,
  WEBGPU_BATCH_DEFAULTS,
} from "../../src/model/batch_defaults.ts";
import { type ActivationBudget, maxBatchFor } from "../../src/io/activation_budget.ts";
import { AttackParamsSchema } from "../../src/attacks/options.ts";

const KINDS = ["attack", "evaluate", "detect"] as const;

function budget(bytesPerSample: number, maxBytes: number, backward = true): ActivationBudget {
  return { bytesPerSample, largestTensorValues: 1000, maxBytes, backward };
}

Deno.test("batch defaults: wasm and cpu keep today's values whatever the budget", () => {
  for (const kind of KINDS) {
    for (const backend of ["wasm", "cpu"] as const) {
      assert.equal(defaultBatchSize(kind, backend), CPU_BATCH_DEFAULTS[kind]);
      // Not clamped: a default that does not fit is refused (413) as before, not silently shrunk.
      assert.equal(defaultBatchSize(kind, backend, budget(1e6, 1e6)), CPU_BATCH_DEFAULTS[kind]);
    }
  }
  assert.deepEqual(CPU_BATCH_DEFAULTS, { attack: 128, evaluate: 256, detect: 128 });
});

Deno.test("batch defaults: the attack schema's own default is the wasm one", () => {
  const p = AttackParamsSchema.parse({ attack: "fgsm", eps: 0.1 }) as { batch_size: number };
  assert.equal(p.batch_size, CPU_BATCH_DEFAULTS.attack);
});

Deno.test("batch defaults: webgpu is larger and clamped to the activation budget", () => {
  for (const kind of KINDS) {
    assert.ok(WEBGPU_BATCH_DEFAULTS[kind] > CPU_BATCH_DEFAULTS[kind]);
    assert.ok(WEBGPU_BATCH_DEFAULTS[kind] <= BATCH_MAXIMA[kind]);
    // Roomy budget: the full webgpu value.
    assert.equal(defaultBatchSize(kind, "webgpu", budget(1000, 2 ** 30)), 1024);
    // A model whose 1024-image backward pass needs 2× the budget gets the largest batch that fits.
    const tight = budget(2 ** 20, 2 ** 30);
    assert.equal(maxBatchFor(tight), 512);
    assert.equal(defaultBatchSize(kind, "webgpu", tight), 512);
    // Forward-only use counts activations once, so twice the images fit.
    assert.equal(defaultBatchSize(kind, "webgpu", budget(2 ** 20, 2 ** 30, false)), 1024);
    // Not even one image fits: 1 (the budget check then refuses it with 413, as on wasm).
    assert.equal(defaultBatchSize(kind, "webgpu", budget(2 ** 31, 2 ** 30)), 1);
    assert.match(batchDefaultText(kind), /^default: \d+ on wasm\/cpu, 1024 on webgpu/);
  }
});

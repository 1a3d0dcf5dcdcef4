import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../../src/errors.ts";
import { syntheticDataset } from "../../src/lab/synthetic.ts";
import { accuracyOn, buildCnn, SMALL_CNN, trainClassifier } from "../../src/lab/train.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

async function weightsOf(m: tf.LayersModel): Promise<Float32Array[]> {
  return await Promise.all(m.getWeights().map(async (w) => await w.data() as Float32Array));
}

Deno.test("buildCnn() gives the same initial weights and layer names for the same seed", async () => {
  await setupBackend();
  const a = buildCnn([16, 16, 1], 4, 7, SMALL_CNN);
  const b = buildCnn([16, 16, 1], 4, 7, SMALL_CNN);
  const c = buildCnn([16, 16, 1], 4, 8, SMALL_CNN);
  try {
    assert.deepEqual(await weightsOf(a), await weightsOf(b));
    assert.notDeepEqual(await weightsOf(a), await weightsOf(c));
    assert.deepEqual(a.layers.map((l) => l.name), b.layers.map((l) => l.name));
    assert.deepEqual(a.outputs[0].shape, [null, 4]);
  } finally {
    a.dispose();
    b.dispose();
    c.dispose();
  }
});

Deno.test("trainClassifier() learns the synthetic shapes and leaves no tensor behind", async () => {
  await setupBackend();
  const data = syntheticDataset({ n: 400, size: 12, numClasses: 4, seed: 2 });
  const model = buildCnn([12, 12, 1], 4, 1, SMALL_CNN);
  try {
    const logs = await assertNoLeak(() =>
      trainClassifier(model, data, { epochs: 4, learningRate: 5e-3, batchSize: 64, seed: 1 })
    );
    assert.equal(logs.length, 4);
    assert.ok(logs[3].loss < logs[0].loss, "the loss falls");
    const acc = await assertNoLeak(() => accuracyOn(model, data));
    assert.ok(acc > 0.8, `training accuracy ${acc}`);
  } finally {
    model.dispose();
  }
});

Deno.test("trainClassifier() rejects bad epochs, batch sizes, learning rates and empty sets", async () => {
  await setupBackend();
  const data = syntheticDataset({ n: 8, numClasses: 2, seed: 2 });
  const model = buildCnn([16, 16, 1], 2, 1, SMALL_CNN);
  try {
    for (const bad of [{ epochs: -1 }, { batchSize: 0 }, { learningRate: 0 }]) {
      await assert.rejects(() => trainClassifier(model, data, bad), ValidationError);
    }
    const empty = syntheticDataset({ n: 0, numClasses: 2 });
    await assert.rejects(() => trainClassifier(model, empty), ValidationError);
  } finally {
    model.dispose();
  }
});

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { UnprocessableError } from "../../src/errors.ts";
import type { ImageBatch } from "../../src/io/images.ts";
import { featuresOf } from "../../src/model/features.ts";
import { Rng } from "../../src/random/rng.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

/** conv(2) → flatten → dense "hidden"(4, relu) → dense "out"(3), on 5×5×1 images. */
function smallClassifier() {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({
    inputShape: [5, 5, 1],
    filters: 2,
    kernelSize: 3,
    name: "conv",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
  }));
  model.add(tf.layers.flatten({ name: "flat" }));
  model.add(tf.layers.dense({
    units: 4,
    activation: "relu",
    name: "hidden",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
  }));
  model.add(tf.layers.dense({
    units: 3,
    name: "out",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
  }));
  return {
    model,
    inputShape: [5, 5, 1] as [number, number, number],
    numClasses: 3,
    logits: (x: tf.Tensor4D) => model.apply(x) as tf.Tensor2D,
  };
}

function images(n: number): ImageBatch {
  const rng = new Rng(1);
  return { shape: [n, 5, 5, 1], data: Float32Array.from({ length: n * 25 }, () => rng.next()) };
}

async function logitsOfModel(
  model: tf.LayersModel,
  x: ImageBatch,
  pre?: (t: tf.Tensor) => tf.Tensor,
) {
  const t = tf.tidy(() => {
    const input = tf.tensor4d(x.data, x.shape);
    return model.apply(pre ? pre(input) : input) as tf.Tensor;
  });
  const out = await t.data();
  t.dispose();
  return out;
}

Deno.test("featuresOf() defaults to the input of the last Dense layer (the penultimate)", async () => {
  await setupBackend();
  const clf = smallClassifier();
  try {
    const f = await assertNoLeak(() => featuresOf(clf, images(7), { batchSize: 3 }));
    assert.equal(f.layer, "hidden");
    assert.equal(f.dim, 4);
    assert.equal(f.data.length, 7 * 4);
    assert.ok(f.data.every((v) => v >= 0), "relu outputs");
  } finally {
    clf.model.dispose();
  }
});

Deno.test("featuresOf() of the output layer equals the model's logits, in any batch size", async () => {
  await setupBackend();
  const clf = smallClassifier();
  const x = images(10);
  try {
    const expected = await logitsOfModel(clf.model, x);
    for (const batchSize of [1, 4, 10, 64]) {
      const f = await assertNoLeak(() => featuresOf(clf, x, { layer: "out", batchSize }));
      assert.equal(f.dim, 3);
      f.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-5));
    }
    const conv = await featuresOf(clf, x, { layer: "conv", batchSize: 4 });
    assert.equal(conv.dim, 3 * 3 * 2);
  } finally {
    clf.model.dispose();
  }
});

Deno.test("featuresOf() applies preprocess as (x − mean)/std before the model", async () => {
  await setupBackend();
  const clf = smallClassifier();
  const x = images(6);
  try {
    const expected = await logitsOfModel(clf.model, x, (t) => t.sub(0.5).div(0.25));
    const f = await assertNoLeak(() =>
      featuresOf(clf, x, {
        layer: "out",
        batchSize: 4,
        preprocess: { mean: [0.5], std: [0.25] },
      })
    );
    f.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-4));
  } finally {
    clf.model.dispose();
  }
});

Deno.test("featuresOf() returns the logits of the same pass when asked", async () => {
  await setupBackend();
  const clf = smallClassifier();
  const x = images(5);
  try {
    const expected = await logitsOfModel(clf.model, x);
    const f = await assertNoLeak(() => featuresOf(clf, x, { batchSize: 2, logits: true }));
    assert.equal(f.layer, "hidden");
    assert.equal(f.logits!.length, 5 * 3);
    f.logits!.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-5));
    const same = await featuresOf(clf, x, { layer: "out", batchSize: 2, logits: true });
    assert.deepEqual(same.logits, same.data);
  } finally {
    clf.model.dispose();
  }
});

Deno.test("featuresOf() refuses an unknown layer with a 422 that lists the layers", async () => {
  await setupBackend();
  const clf = smallClassifier();
  try {
    await assertNoLeak(async () => {
      await assert.rejects(
        () => featuresOf(clf, images(2), { layer: "nope", batchSize: 2 }),
        (err: unknown) => {
          assert.ok(err instanceof UnprocessableError);
          assert.equal(err.status, 422);
          assert.match(err.message, /no layer named 'nope'/);
          assert.match(err.message, /conv, flat, hidden, out/);
          return true;
        },
      );
    });
  } finally {
    clf.model.dispose();
  }
});

Deno.test("featuresOf() stops between batches when the signal aborts", async () => {
  await setupBackend();
  const clf = smallClassifier();
  try {
    const ctl = new AbortController();
    ctl.abort(new Error("client went away"));
    await assertNoLeak(() =>
      assert.rejects(
        () => featuresOf(clf, images(4), { batchSize: 2, signal: ctl.signal }),
        /client went away/,
      )
    );
  } finally {
    clf.model.dispose();
  }
});

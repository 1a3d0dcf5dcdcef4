/**
 * The smoke subset CI runs with BACKEND=webgpu (on the software adapter of a GPU-less machine, on a
 * real GPU elsewhere): predict through HTTP, a gradient with respect to the input, and a training
 * step — the three paths every endpoint is built from. It runs under any BACKEND.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { fixtureBytes, fixtureForm, setupBackend, testApp } from "./_helpers.ts";
import { parseBundle } from "../src/io/model_bundle.ts";
import { loadClassifier } from "../src/model/load_classifier.ts";

const LIMITS = {
  maxModelJsonBytes: 1 << 20,
  maxWeightBytes: 1 << 20,
  maxParams: 1e6,
  maxLayers: 99,
};

async function fixture() {
  await setupBackend();
  return loadClassifier(
    parseBundle(fixtureBytes("model.json"), [{
      name: "weights.bin",
      bytes: fixtureBytes("weights.bin"),
    }], LIMITS),
  );
}

Deno.test("smoke: POST /v1/predict works on the selected backend", async () => {
  const app = await testApp();
  const res = await app.request("/readyz");
  assert.equal((await res.json()).backend.name, Deno.env.get("BACKEND") ?? "wasm");
  const p = await app.request("/v1/predict", { method: "POST", body: fixtureForm() });
  assert.equal(p.status, 200);
  assert.equal((await p.json()).predictions.length, 64);
});

Deno.test("smoke: the input gradient is finite, non-zero and leaves no tensor", async () => {
  const clf = await fixture();
  const before = tf.memory().numTensors;
  const g = tf.tidy(() => {
    const x = tf.randomUniform([4, 10, 10, 1], 0, 1, "float32", 1) as tf.Tensor4D;
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3], "int32"), 4);
    return tf.grad((xx: tf.Tensor) =>
      tf.losses.softmaxCrossEntropy(y, clf.logits(xx as tf.Tensor4D))
    )(x);
  });
  const v = await g.data();
  g.dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.ok(v.every(Number.isFinite));
  assert.ok(v.some((a) => a !== 0));
  clf.dispose();
});

Deno.test("smoke: an SGD step lowers the loss on a fixed batch", async () => {
  const clf = await fixture();
  const x = tf.randomUniform([8, 10, 10, 1], 0, 1, "float32", 2) as tf.Tensor4D;
  const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], "int32"), 4);
  const opt = tf.train.sgd(0.5);
  const loss = () => tf.losses.softmaxCrossEntropy(y, clf.logits(x, true)) as tf.Scalar;
  const l0 = tf.tidy(loss);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) tf.tidy(() => void opt.minimize(loss));
  const l1 = tf.tidy(loss);
  const [a, b] = [(await l0.data())[0], (await l1.data())[0]];
  assert.ok(b < a, `loss ${a} -> ${b}`);
  tf.dispose([l0, l1, x, y]);
  opt.dispose();
  assert.ok(tf.memory().numTensors <= before);
  clf.dispose();
});

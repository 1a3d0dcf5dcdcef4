import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { loadConfig } from "../../src/config.ts";
import { ValidationError } from "../../src/errors.ts";
import { maxBatchFor } from "../../src/io/activation_budget.ts";
import { type BundleLimits, parseBundle, saveBundle } from "../../src/io/model_bundle.ts";
import { isSupportedLayer } from "../../src/io/supported_layers.ts";
import type { Dataset } from "../../src/lab/dataset.ts";
import { parseLabOptions, runLab } from "../../src/lab/lab.ts";
import { syntheticDataset } from "../../src/lab/synthetic.ts";
import { preciseBatchNorm, trainClassifier } from "../../src/lab/train.ts";
import { buildVggBn, DEFAULT_VGG, SMALL_VGG } from "../../src/lab/vgg_bn.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import { applyTrigger, parseTriggerSpec } from "../../src/triggers/trigger.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

// The VGG runs below take seconds on wasm and minutes on the pure-JS cpu backend; CI runs them on
// wasm, and the cpu pass keeps the kernel and model tests that are about the backend.
const SLOW_ON_CPU = Deno.env.get("BACKEND") === "cpu";

/** The service's own bundle limits at their defaults (what a deployment would apply). */
function serviceLimits(): BundleLimits {
  const c = loadConfig({});
  return {
    maxModelJsonBytes: c.MAX_MODEL_JSON_BYTES,
    maxWeightBytes: c.MAX_WEIGHT_BYTES,
    maxParams: c.MAX_MODEL_PARAMS,
    maxLayers: c.MAX_MODEL_LAYERS,
    maxActivationBytes: c.MAX_ACTIVATION_BYTES,
    use: { batch: 128, backward: true },
  };
}

const bnLayers = (m: tf.LayersModel) =>
  m.layers.filter((l) => l.getClassName() === "BatchNormalization");

/** Gives every batch norm seeded non-trivial scales, offsets and moving statistics. */
function randomiseBatchNorm(m: tf.LayersModel, seed: number): void {
  bnLayers(m).forEach((l, i) => {
    const n = l.getWeights()[0].shape[0];
    const w = tf.tidy(() => [
      tf.randomUniform([n], 0.5, 1.5, "float32", seed + 4 * i),
      tf.randomUniform([n], -0.2, 0.2, "float32", seed + 4 * i + 1),
      tf.randomUniform([n], -0.3, 0.3, "float32", seed + 4 * i + 2),
      tf.randomUniform([n], 0.2, 2, "float32", seed + 4 * i + 3),
    ]);
    l.setWeights(w);
    tf.dispose(w);
  });
}

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [x, y] = await Promise.all([a.data(), b.data()]);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

function rgb(n: number, seed: number, size = 32): Dataset {
  return syntheticDataset({ n, size, numClasses: 6, channels: 3, seed });
}

for (const [label, size] of [["SMALL_VGG", SMALL_VGG], ["DEFAULT_VGG", DEFAULT_VGG]] as const) {
  Deno.test(`a ${label} bundle passes the service's limits and loads to the same logits (1e-5)`, async () => {
    await setupBackend();
    const before = tf.memory().numTensors;
    const model = buildVggBn([32, 32, 3], 10, 3, size);
    randomiseBatchNorm(model, 11);
    const x = tf.randomUniform([4, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
    const bundle = await saveBundle(model, { outputActivation: "softmax" });
    const artifacts = parseBundle(bundle.modelJson, bundle.weights, serviceLimits());
    const clf = await loadClassifier(artifacts);
    try {
      const doc = JSON.parse(new TextDecoder().decode(bundle.modelJson));
      const layers = doc.modelTopology.config.layers as { class_name: string }[];
      assert.ok(layers.every((l) => isSupportedLayer(l.class_name)), "every layer is supported");
      const names = doc.weightsManifest[0].weights.map((w: { name: string }) => w.name);
      assert.ok(names.includes("block3_conv2_bn/moving_variance"), "moving statistics exported");
      assert.equal(clf.outputActivation, "softmax");
      assert.deepEqual(clf.inputShape, [32, 32, 3]);
      assert.equal(clf.numClasses, 10);
      const budget = artifacts.activationBudget!;
      assert.ok(
        maxBatchFor(budget) >= 128,
        `a 128-image backward batch fits: ${maxBatchFor(budget)}`,
      );
      const want = model.predict(x) as tf.Tensor;
      const got = clf.logits(x);
      const diff = await maxAbsDiff(want, got);
      assert.ok(diff < 1e-5, `logits differ by ${diff}`);
      // Inference mode reads the moving statistics: a different mean gives different logits.
      const moved = tf.tidy(() => tf.sum(tf.abs(tf.sub(want, clf.logits(x, true)))));
      assert.ok((await moved.data())[0] > 1e-3, "training mode (batch statistics) differs");
      tf.dispose([want, got, moved]);
    } finally {
      clf.dispose();
      model.dispose();
      x.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
  });
}

Deno.test("two buildVggBn() of one seed save byte-identical model.json and weights; another seed differs", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const save = async (seed: number) => {
    const m = buildVggBn([32, 32, 3], 10, seed, SMALL_VGG);
    try {
      return await saveBundle(m, { outputActivation: "softmax" });
    } finally {
      m.dispose();
    }
  };
  const [a, b, c] = [await save(7), await save(7), await save(8)];
  assert.deepEqual(a.modelJson, b.modelJson);
  assert.deepEqual(a.weights, b.weights);
  // The initialisers' seeds are in the topology; the layers are the same.
  const layers = (j: Uint8Array) =>
    JSON.parse(new TextDecoder().decode(j)).modelTopology.config.layers.map((
      l: { class_name: string; config: { name: string } },
    ) => `${l.class_name}:${l.config.name}`);
  assert.deepEqual(layers(a.modelJson), layers(c.modelJson));
  assert.equal(layers(a.modelJson).length, 23, "6 × (conv, BN, ReLU), 3 pools, flatten, dense");
  assert.notDeepEqual(a.weights[0].bytes, c.weights[0].bytes);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("buildVggBn() and the lab refuse shapes three pools cannot halve, grey data and bad widths", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const vars = Object.keys(tf.engine().registeredVariables).length;
  for (
    const shape of [[28, 28, 1], [12, 12, 3], [4, 4, 3], [32, 20, 3]] as [number, number, number][]
  ) {
    assert.throws(() => buildVggBn(shape, 10, 1, SMALL_VGG), ValidationError, shape.join("×"));
  }
  for (const width of [0, -1, 1.5, 513, NaN]) {
    assert.throws(() => buildVggBn([32, 32, 3], 10, 1, { width }), ValidationError, `${width}`);
  }
  assert.equal(tf.memory().numTensors, before);
  assert.equal(Object.keys(tf.engine().registeredVariables).length, vars);
  for (
    const bad of [
      { model: "vgg-bn" }, // Fashion-MNIST as it comes: 28×28×1
      { model: "vgg-bn", dataset: "synthetic" }, // 16×16×1
      { model: "vgg-bn", dataset: "synthetic", syntheticChannels: 3, syntheticSize: 20 },
      { model: "vgg-bn", dataset: "synthetic", lift: "rgb32", syntheticSize: 31 },
      { model: "vgg-bn", dataset: "synthetic", lift: "rgb32", syntheticSize: 40 },
      { model: "vgg-bn", lift: "rgb32", vggWidth: 0 },
      { model: "vgg-bn", lift: "rgb32", vggWidth: 513 },
      { model: "vgg-bn", lift: "rgb32", bnStatistics: "none" },
      { model: "vgg", lift: "rgb32" },
      { dataset: "synthetic", syntheticChannels: 2 },
      { lift: "rgb64" },
    ]
  ) {
    assert.throws(() => parseLabOptions(bad), ValidationError, JSON.stringify(bad));
  }
  assert.throws(() => parseLabOptions({ model: "vgg-bn" }), /28×28×1\. Use lift "rgb32"/);
  assert.equal(parseLabOptions({ model: "vgg-bn", lift: "rgb32" }).vggWidth, 64);
  const o = parseLabOptions({ model: "vgg-bn", dataset: "synthetic", syntheticChannels: 3 });
  assert.equal(o.bnStatistics, "precise");
  assert.equal(parseLabOptions({}).model, "cnn");
});

Deno.test("training steps in training mode move the batch-norm moving statistics; inference does not", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const model = buildVggBn([16, 16, 3], 6, 2, SMALL_VGG);
  const d = rgb(64, 4, 16);
  const stats = async () =>
    await Promise.all(
      bnLayers(model).flatMap((l) => l.getWeights().slice(2)).map(async (t) =>
        Array.from(await t.data())
      ),
    );
  try {
    const initial = await stats();
    assert.ok(initial[0].every((v) => v === 0) && initial[1].every((v) => v === 1));
    tf.tidy(() => {
      model.apply(tf.zeros([2, 16, 16, 3]), { training: false });
    });
    assert.deepEqual(await stats(), initial, "inference leaves them");
    await trainClassifier(model, d, { epochs: 1, batchSize: 16, seed: 1 });
    const after = await stats();
    for (let i = 0; i < after.length; i++) {
      assert.ok(after[i].some((v, j) => Math.abs(v - initial[i][j]) > 1e-6), `statistic ${i}`);
    }
    // Four steps of momentum 0.99 move the first moving mean 1 − 0.99⁴ ≈ 3.9% of the way.
    const first = bnLayers(model)[0];
    const conv = model.layers[0];
    const exact = tf.tidy(() => {
      const z = conv.apply(tf.tensor4d(Float32Array.from(d.x, (v) => v / 255), d.shape));
      return tf.moments(z as tf.Tensor, [0, 1, 2]).mean;
    });
    const exactMean = Array.from(await exact.data());
    exact.dispose();
    // PreciseBN: the first layer's moving mean becomes the mean of its inputs over the set.
    assert.equal(await preciseBatchNorm(model, d, { batchSize: 24 }), true);
    const precise = Array.from(await first.getWeights()[2].data());
    for (let j = 0; j < precise.length; j++) {
      assert.ok(Math.abs(precise[j] - exactMean[j]) < 1e-4, `channel ${j}`);
    }
    assert.ok(
      exactMean.some((v, j) => Math.abs(after[0][j] - v) > 10 * Math.abs(precise[j] - v) + 1e-4),
      "the moving average had not got there",
    );
  } finally {
    model.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("every trigger type stamps 32×32×3 images, all channels at once for BadNets", () => {
  const d = rgb(4, 9);
  const batch = { data: Float32Array.from(d.x, (v) => v / 255), shape: d.shape };
  for (const type of ["badnets", "blend", "wanet", "sig"]) {
    const out = applyTrigger(parseTriggerSpec({ type, seed: 3 }), batch);
    assert.equal(out.length, batch.data.length, type);
    assert.ok(out.every((v) => v >= 0 && v <= 1), type);
    assert.ok(out.some((v, i) => Math.abs(v - batch.data[i]) > 1e-3), `${type} changes pixels`);
  }
  const bn = applyTrigger(parseTriggerSpec({ type: "badnets" }), batch);
  const at = (r: number, q: number, ch: number) => bn[((1 * 32 + r) * 32 + q) * 3 + ch];
  for (const ch of [0, 1, 2]) {
    assert.equal(at(29, 29, ch), 1, "bright corner cell");
    assert.equal(at(29, 30, ch), 0, "dark cell");
  }
});

Deno.test({
  name: "a small vgg-bn lab on synthetic 32×32×3 learns, reports ASR, and saves what it measured",
  ignore: SLOW_ON_CPU,
}, async () => {
  await setupBackend();
  const opts = {
    dataset: "synthetic",
    syntheticSize: 32,
    syntheticChannels: 3,
    model: "vgg-bn",
    vggWidth: SMALL_VGG.width,
    trainSize: 400,
    extraSize: 100,
    testSize: 300,
    epochs: 1,
    batchSize: 32,
    seed: 1,
  } as const;
  const r = await assertNoLeak(() => runLab(opts));
  const rep = r.report;
  assert.equal(rep.model, "vgg-bn");
  assert.deepEqual(rep.inputShape, [32, 32, 3]);
  assert.deepEqual(rep.architecture, { width: 8 });
  assert.equal(rep.parameters, 21_374);
  assert.deepEqual(r.test.shape, [300, 32, 32, 3]);
  assert.ok(rep.cleanAccuracy > 0.6, `clean accuracy ${rep.cleanAccuracy} (chance 1/6)`);
  assert.ok(rep.attackSuccessRate >= 0 && rep.attackSuccessRate <= 1);
  assert.ok(rep.attackSuccessRate > 0.3, `ASR ${rep.attackSuccessRate}`);
  assert.equal(rep.history.length, 1);

  // The saved bundle computes the reported accuracy: the precise statistics went into it.
  const before = tf.memory().numTensors;
  const clf = await loadClassifier(
    parseBundle(r.model.modelJson, r.model.weights, serviceLimits()),
  );
  try {
    const pred = tf.tidy(() =>
      clf.logits(tf.tensor4d(Float32Array.from(r.test.x, (v) => v / 255), r.test.shape)).argMax(1)
    );
    const p = Array.from(await pred.data());
    pred.dispose();
    const acc = p.reduce((s, v, i) => s + (v === r.test.y[i] ? 1 : 0), 0) / p.length;
    assert.equal(acc, rep.cleanAccuracy);
  } finally {
    clf.dispose();
  }
  assert.equal(tf.memory().numTensors, before);

  // The moving averages of one short epoch serve the same weights worse.
  const ema = await assertNoLeak(() => runLab({ ...opts, bnStatistics: "ema" }));
  assert.ok(
    rep.cleanAccuracy > ema.report.cleanAccuracy,
    `precise ${rep.cleanAccuracy} vs ema ${ema.report.cleanAccuracy}`,
  );
  assert.equal(ema.report.cleanAccuracy, ema.report.history[0].cleanAccuracy);
});

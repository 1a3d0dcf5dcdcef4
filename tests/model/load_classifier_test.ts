import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  HttpError,
  ShapeMismatchError,
  UnsupportedModelError,
  ValidationError,
} from "../../src/errors.ts";
import {
  type BundleFile,
  type BundleLimits,
  parseBundle,
  saveBundle,
} from "../../src/io/model_bundle.ts";
import { parseNpy } from "../../src/io/npy.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

const FIXTURE = new URL("../fixtures/tiny_cnn/", import.meta.url);
const LIMITS: BundleLimits = {
  maxModelJsonBytes: 1 << 20,
  maxWeightBytes: 1 << 20,
  maxParams: 100_000,
  maxLayers: 100,
};
// deno-lint-ignore no-explicit-any
type Json = any;

const read = (path: string) => Deno.readFile(new URL(path, FIXTURE));
const tinyJson = await read("model.json");
const tinyShards: BundleFile[] = [{ name: "weights.bin", bytes: await read("weights.bin") }];
const residualJson = await read("residual/model.json");
const residualShards: BundleFile[] = await Promise.all(
  ["group1-shard1of2.bin", "group1-shard2of2.bin"].map(async (name) => ({
    name,
    bytes: await read(`residual/${name}`),
  })),
);
const xNpy = parseNpy(await read("x.npy"));
const yNpy = parseNpy(await read("y.npy"));

const tiny = () => parseBundle(tinyJson, tinyShards, LIMITS);
/** The held-out fixture images as float pixels in [0,1]. */
const images = (): tf.Tensor4D =>
  tf.tidy(() => {
    const shape = xNpy.shape as [number, number, number, number];
    return tf.tensor4d(xNpy.data as Uint8Array, shape, "int32").div(255);
  });

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.tidy(() => a.sub(b).abs().max());
  const v = (await d.data())[0];
  d.dispose();
  return v;
}

async function rejectsWith(
  p: Promise<unknown>,
  cls: new (...args: never[]) => HttpError,
  status: number,
  pattern?: RegExp,
): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err}`);
    assert.equal(err.status, status);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** A bundle for an arbitrary small model, as a user would upload it. */
async function bundleOf(model: tf.LayersModel) {
  const saved = await saveBundle(model);
  model.dispose();
  return parseBundle(saved.modelJson, saved.weights, LIMITS);
}

Deno.test("loadClassifier() reads the fixture's signature and switches its softmax to logits", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const clf = await loadClassifier(tiny());
    assert.deepEqual(clf.inputShape, [10, 10, 1]);
    assert.equal(clf.numClasses, 4);
    assert.equal(clf.outputActivation, "softmax");
    clf.dispose();
  });
});

Deno.test("logits() are pre-softmax scores whose softmax matches the original model", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    // The untouched bundle, loaded straight through tfjs, outputs probabilities.
    const raw = JSON.parse(new TextDecoder().decode(tinyJson));
    const original = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: raw.modelTopology,
      weightSpecs: raw.weightsManifest[0].weights,
      weightData: tinyShards[0].bytes.slice().buffer,
    }));
    const clf = await loadClassifier(tiny());
    const x = images();
    const logits = clf.logits(x);
    const probs = original.predict(x) as tf.Tensor;
    const softmaxed = tf.softmax(logits);
    const rowSums = tf.tidy(() => logits.sum(1).abs().max());
    assert.ok(await maxAbsDiff(softmaxed, probs) < 1e-6);
    // Probabilities would sum to 1 on every row; logits do not.
    assert.ok((await rowSums.data())[0] > 1.5);
    tf.dispose([x, logits, probs, softmaxed, rowSums]);
    original.dispose();
    clf.dispose();
  });
});

Deno.test("the fixture classifies its held-out images with at least 90% accuracy", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const clf = await loadClassifier(tiny());
    const x = images();
    const pred = tf.tidy(() => clf.logits(x).argMax(1));
    const p = await pred.data();
    const y = yNpy.data as Int32Array;
    const hits = y.filter((label, i) => label === p[i]).length;
    assert.ok(hits / y.length >= 0.9, `accuracy ${hits / y.length}`);
    tf.dispose([x, pred]);
    clf.dispose();
  });
});

Deno.test("saveBundle() -> parseBundle() -> loadClassifier() reproduces logits and restores softmax", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    for (
      const [json, shards] of [[tinyJson, tinyShards], [residualJson, residualShards]] as const
    ) {
      const first = await loadClassifier(parseBundle(json, shards, LIMITS));
      const saved = await first.save();
      assert.deepEqual(saved.weights.map((w) => w.name), ["weights.bin"]);
      const savedJson = JSON.parse(new TextDecoder().decode(saved.modelJson));
      assert.equal(savedJson.format, "layers-model");
      assert.deepEqual(savedJson.weightsManifest[0].paths, ["weights.bin"]);
      const out = savedJson.modelTopology.config.layers.at(-1);
      assert.equal(out.config.activation, "softmax");

      const second = await loadClassifier(parseBundle(saved.modelJson, saved.weights, LIMITS));
      assert.equal(second.outputActivation, "softmax");
      const x = images();
      const a = first.logits(x);
      const b = second.logits(x);
      assert.ok(await maxAbsDiff(a, b) < 1e-6);
      tf.dispose([x, a, b]);
      first.dispose();
      second.dispose();
    }
  });
});

Deno.test("a saved bundle keeps the user's topology, initializers included", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const clf = await loadClassifier(tiny());
    const saved = await clf.save();
    const original = JSON.parse(new TextDecoder().decode(tinyJson));
    const again = JSON.parse(new TextDecoder().decode(saved.modelJson));
    assert.deepEqual(again.modelTopology, original.modelTopology);
    assert.equal(again.modelTopology.config.layers[0].config.kernel_initializer.config.seed, 1);
    clf.dispose();
  });
});

Deno.test("a nested Sequential model loads, predicts and saves back unchanged", async () => {
  await setupBackend();
  const head = tf.sequential({
    name: "head",
    layers: [
      tf.layers.flatten({ inputShape: [4, 4, 2], name: "flat" }),
      tf.layers.dense({ units: 3, activation: "softmax", name: "out" }),
    ],
  });
  const model = tf.sequential({
    name: "outer",
    layers: [
      tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 2, kernelSize: 1, name: "c" }),
      head,
    ],
  });
  const saved = await saveBundle(model);
  const x = tf.randomUniform([2, 4, 4, 1], 0, 1, "float32", 3) as tf.Tensor4D;
  const expected = model.predict(x) as tf.Tensor;
  model.dispose();
  await assertNoLeak(async () => {
    const clf = await loadClassifier(parseBundle(saved.modelJson, saved.weights, LIMITS));
    assert.equal(clf.outputActivation, "softmax");
    const probs = tf.tidy(() => tf.softmax(clf.logits(x)));
    assert.ok(await maxAbsDiff(probs, expected) < 1e-6);
    const again = await clf.save();
    const a = JSON.parse(new TextDecoder().decode(again.modelJson)).modelTopology;
    const b = JSON.parse(new TextDecoder().decode(saved.modelJson)).modelTopology;
    assert.deepEqual(a, b);
    probs.dispose();
    clf.dispose();
  });
  tf.dispose([x, expected]);
});

Deno.test("a model that starts with a Rescaling layer loads and predicts", async () => {
  await setupBackend();
  const model = tf.sequential({
    layers: [
      tf.layers.rescaling({ inputShape: [4, 4, 3], scale: 2, offset: -1 }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, padding: "same" }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 2 }),
    ],
  });
  const x = tf.randomUniform([2, 4, 4, 3], 0, 1, "float32", 5) as tf.Tensor4D;
  const expected = model.predict(x) as tf.Tensor;
  const artifacts = await bundleOf(model);
  await assertNoLeak(async () => {
    const clf = await loadClassifier(artifacts);
    assert.equal(clf.outputActivation, "linear");
    const logits = clf.logits(x);
    assert.ok(await maxAbsDiff(logits, expected) < 1e-6);
    logits.dispose();
    clf.dispose();
  });
  tf.dispose([x, expected]);
});

Deno.test("dispose() returns the tensor count to its baseline", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const clf = await loadClassifier(tiny(), { mean: [0.5], std: [0.25] });
  assert.ok(tf.memory().numTensors > before);
  clf.dispose();
  clf.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("logits() applies preprocess as (x - mean) / std before the model", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const plain = await loadClassifier(tiny());
    const normed = await loadClassifier(tiny(), { mean: [0.5], std: [0.25] });
    const x = images();
    const expected = tf.tidy(() => plain.logits(x.sub(0.5).div(0.25) as tf.Tensor4D));
    const actual = normed.logits(x);
    assert.ok(await maxAbsDiff(actual, expected) < 1e-5);
    tf.dispose([x, expected, actual]);
    plain.dispose();
    normed.dispose();
  });
});

Deno.test("logits() carries gradients to the input pixels", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const clf = await loadClassifier(parseBundle(residualJson, residualShards, LIMITS));
    const x = images();
    const g = tf.grad((xx: tf.Tensor) => clf.logits(xx as tf.Tensor4D, true).sum())(x);
    const norm = tf.tidy(() => g.abs().sum());
    assert.ok((await norm.data())[0] > 0);
    tf.dispose([x, g, norm]);
    clf.dispose();
  });
});

Deno.test("logits() refuses images of the wrong shape with 422", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const clf = await loadClassifier(tiny());
    const x = tf.zeros([2, 12, 12, 1]) as tf.Tensor4D;
    assert.throws(() => clf.logits(x), ShapeMismatchError);
    x.dispose();
    clf.dispose();
  });
});

Deno.test("loadClassifier() refuses a preprocess of the wrong length with 422 and leaks nothing", async () => {
  await setupBackend();
  await assertNoLeak(() =>
    rejectsWith(
      loadClassifier(tiny(), { mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2] }),
      ShapeMismatchError,
      422,
      /1 channel\(s\)/,
    )
  );
});

Deno.test("loadClassifier() refuses a zero or non-finite std with 400", async () => {
  await setupBackend();
  await rejectsWith(loadClassifier(tiny(), { mean: [0], std: [0] }), ValidationError, 400);
  await rejectsWith(loadClassifier(tiny(), { mean: [NaN], std: [1] }), ValidationError, 400);
});

Deno.test("loadClassifier() refuses a model without rank-4 image input with 422", async () => {
  await setupBackend();
  const artifacts = await bundleOf(tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [10, 10] }),
      tf.layers.dense({ units: 3, activation: "softmax" }),
    ],
  }));
  await assertNoLeak(() =>
    rejectsWith(loadClassifier(artifacts), UnsupportedModelError, 422, /\[null, H, W, C\]/)
  );
});

Deno.test("loadClassifier() refuses a model with a single output class with 422", async () => {
  await setupBackend();
  const artifacts = await bundleOf(tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [4, 4, 1] }), tf.layers.dense({ units: 1 })],
  }));
  await assertNoLeak(() =>
    rejectsWith(loadClassifier(artifacts), UnsupportedModelError, 422, /K >= 2/)
  );
});

Deno.test("loadClassifier() turns tfjs build failures into 422 and frees half-built layers", async () => {
  await setupBackend();
  const vars = () => Object.keys(tf.engine().registeredVariables).length;
  const before = vars();
  // An unknown activation on the last layer fails after the conv layer has made its variables.
  const badActivation = tiny();
  (badActivation.modelTopology as Json).config.layers[3].config.activation = "swishy";
  // A weight the topology does not have fails after every layer is built.
  const badName = tiny();
  badName.weightSpecs![0] = { ...badName.weightSpecs![0], name: "conv/kernel_typo" };
  // Same byte count, wrong shape for the layer.
  const badShape = tiny();
  badShape.weightSpecs![2] = { ...badShape.weightSpecs![2], shape: [4, 96] };
  await assertNoLeak(async () => {
    await rejectsWith(loadClassifier(badActivation), UnsupportedModelError, 422, /swishy/);
    await rejectsWith(loadClassifier(badName), UnsupportedModelError, 422, /kernel_typo/);
    await rejectsWith(loadClassifier(badShape), UnsupportedModelError, 422, /shape/i);
  });
  assert.equal(vars(), before);
});

Deno.test("loadClassifier() linearizes artifacts that did not come through parseBundle, on a copy", async () => {
  await setupBackend();
  const raw = JSON.parse(new TextDecoder().decode(tinyJson));
  const artifacts = {
    modelTopology: raw.modelTopology,
    weightSpecs: raw.weightsManifest[0].weights,
    weightData: tinyShards[0].bytes.slice().buffer,
  };
  await assertNoLeak(async () => {
    const clf = await loadClassifier(artifacts);
    assert.equal(clf.outputActivation, "softmax");
    assert.equal(raw.modelTopology.config.layers[3].config.activation, "softmax");
    clf.dispose();
  });
});

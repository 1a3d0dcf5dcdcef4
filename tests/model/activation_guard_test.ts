import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  HttpError,
  LimitExceededError,
  UnsupportedModelError,
  ValidationError,
} from "../../src/errors.ts";
import { GRADIENT_FACTOR, planActivations } from "../../src/io/activation_budget.ts";
import { type BundleLimits, parseBundle, saveBundle } from "../../src/io/model_bundle.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import { MIN_STD, PreprocessSchema } from "../../src/model/preprocess_schema.ts";
import { fixtureBytes, setupBackend } from "../_helpers.ts";

const LIMITS: BundleLimits = {
  maxModelJsonBytes: 1 << 20,
  maxWeightBytes: 1 << 22,
  maxParams: 1 << 20,
  maxLayers: 64,
};
const tinyJson = fixtureBytes("model.json");
const tinyShards = [{ name: "weights.bin", bytes: fixtureBytes("weights.bin") }];
// deno-lint-ignore no-explicit-any
type Json = any;

function tinyWith(edit: (doc: Json) => void): Uint8Array {
  const doc = JSON.parse(new TextDecoder().decode(tinyJson));
  edit(doc);
  return new TextEncoder().encode(JSON.stringify(doc));
}

Deno.test("parseBundle() refuses an 11×11 valid convolution on a 10×10 input with 422 naming the layer", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const json = tinyWith((d) => d.modelTopology.config.layers[0].config.kernel_size = [11, 11]);
  assert.throws(
    () => parseBundle(json, tinyShards, LIMITS),
    (e) =>
      e instanceof UnsupportedModelError && e.status === 422 &&
      /layer 'conv' \(Conv2D\) outputs 0×0/.test(e.message),
  );
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("parseBundle() refuses duplicate layer names with 422, not a 500", () => {
  const json = tinyWith((d) => d.modelTopology.config.layers[2].config.name = "conv");
  assert.throws(
    () => parseBundle(json, tinyShards, LIMITS),
    (e) => e instanceof HttpError && e.status === 422 && /both named 'conv'/.test(e.message),
  );
});

Deno.test("loadClassifier() runs the static pass itself for artifacts that skipped parseBundle", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const vars = Object.keys(tf.engine().registeredVariables).length;
  const valid = parseBundle(tinyJson, tinyShards, LIMITS);
  const topology = structuredClone(valid.modelTopology) as Json;
  topology.config.layers[1].config.pool_size = [9, 9];
  const { activationBudget: _, ...bare } = valid;
  await assert.rejects(
    () => loadClassifier({ ...bare, modelTopology: topology }),
    (e) =>
      e instanceof UnsupportedModelError && /'pool' \(MaxPooling2D\) outputs 0×0/.test(e.message),
  );
  assert.equal(tf.memory().numTensors, before);
  assert.equal(Object.keys(tf.engine().registeredVariables).length, vars);
});

Deno.test("logits() refuses a batch over the activation budget with 413 before allocating, and runs one that fits", async () => {
  await setupBackend();
  // The parse-time figure (it counts the softmax the loader then removes, so it is the larger).
  const per = parseBundle(tinyJson, tinyShards, LIMITS).activationBudget!.bytesPerSample;
  // Room for exactly 10 images forward, 5 with gradients.
  const clf = await loadClassifier(
    parseBundle(tinyJson, tinyShards, { ...LIMITS, maxActivationBytes: 10 * per }),
  );
  try {
    const x = tf.zeros([11, 10, 10, 1]) as tf.Tensor4D;
    const fits = tf.zeros([10, 10, 10, 1]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    assert.throws(
      () => clf.logits(x),
      (e) =>
        e instanceof LimitExceededError && /a batch of 11 image\(s\)/.test(e.message) &&
        /A batch of at most 10 fits/.test(e.message),
    );
    assert.equal(tf.memory().numTensors, before, "nothing allocated by the refused call");
    tf.dispose(clf.logits(fits));
    // Under a gradient tape the same batch costs GRADIENT_FACTOR times as much.
    assert.equal(GRADIENT_FACTOR, 2);
    const grad = tf.grad((v: tf.Tensor) => clf.logits(v as tf.Tensor4D).sum());
    assert.throws(() => grad(fits), /activations and gradients.*at most 5 fits/);
    const five = tf.zeros([5, 10, 10, 1]);
    tf.dispose([grad(five), five]);
    assert.throws(() => clf.checkBatch!(6, true), LimitExceededError);
    clf.checkBatch!(6, false);
    tf.dispose([x, fits]);
    assert.equal(tf.memory().numTensors, before - 2);
  } finally {
    clf.dispose();
  }
});

Deno.test("loadClassifier() re-checks tfjs' own shapes, so an understated budget cannot pass a large batch", async () => {
  await setupBackend();
  const valid = parseBundle(tinyJson, tinyShards, LIMITS);
  const per = valid.activationBudget!.bytesPerSample;
  const lying = {
    ...valid,
    activationBudget: { ...valid.activationBudget!, bytesPerSample: 1, maxBytes: 4 * per },
  };
  const clf = await loadClassifier(lying);
  try {
    // With the understated figure 4·per bytes would admit millions of images; tfjs' shapes say 4.
    clf.checkBatch!(4, false);
    assert.throws(() => clf.checkBatch!(5, false), LimitExceededError);
  } finally {
    clf.dispose();
  }
});

Deno.test("a saved and reloaded model keeps the same static plan (the pass reads what saveBundle writes)", async () => {
  await setupBackend();
  const clf = await loadClassifier(parseBundle(tinyJson, tinyShards, LIMITS));
  try {
    const saved = await saveBundle(clf.model);
    const again = parseBundle(saved.modelJson, saved.weights, LIMITS);
    assert.deepEqual(
      planActivations(again.modelTopology as Json).layers.map((l) => l.outputShapes),
      [[[8, 8, 6]], [[4, 4, 6]], [[96]], [[4]]],
    );
  } finally {
    clf.dispose();
  }
});

Deno.test("preprocess.std below 1e-3 is refused by the schema and by the loader, with the bound in the message", async () => {
  assert.equal(MIN_STD, 1e-3);
  const r = PreprocessSchema.safeParse({ mean: [0.5], std: [1e-4] });
  assert.ok(!r.success);
  assert.match(r.error.issues[0].message, /at least 0\.001/);
  assert.ok(PreprocessSchema.safeParse({ mean: [0.5], std: [1e-3] }).success);
  assert.ok(!PreprocessSchema.safeParse({ mean: [0.5], std: [5e-324] }).success);
  await setupBackend();
  await assert.rejects(
    () => loadClassifier(parseBundle(tinyJson, tinyShards, LIMITS), { mean: [0], std: [1e-6] }),
    (e) => e instanceof ValidationError && /std >= 0\.001/.test(e.message),
  );
});

Deno.test("gradients through DepthwiseConv2D are a 422 naming the layer where the backend has no kernel for them, and work where it has", async () => {
  await setupBackend();
  const m = tf.sequential({
    layers: [
      tf.layers.depthwiseConv2d({ inputShape: [6, 6, 1], kernelSize: 3, name: "dw" }),
      tf.layers.flatten({ name: "f" }),
      tf.layers.dense({ units: 2, name: "d" }),
    ],
  });
  const saved = await saveBundle(m);
  m.dispose();
  const clf = await loadClassifier(parseBundle(saved.modelJson, saved.weights, LIMITS));
  const x = tf.zeros([2, 6, 6, 1]) as tf.Tensor4D;
  try {
    tf.dispose(clf.logits(x)); // forward passes need no gradient kernel
    const grad = () => tf.grad((v: tf.Tensor) => clf.logits(v as tf.Tensor4D).sum())(x);
    const before = tf.memory().numTensors;
    if (tf.getKernel("DepthwiseConv2dNativeBackpropInput", tf.getBackend()) === undefined) {
      assert.throws(
        grad,
        (e) =>
          e instanceof UnsupportedModelError && e.status === 422 &&
          /layer 'dw' \(DepthwiseConv2D\) cannot be differentiated on the wasm backend/.test(
            e.message,
          ),
      );
      assert.equal(tf.memory().numTensors, before, "refused before the forward pass");
    } else {
      const g = grad();
      assert.deepEqual(g.shape, [2, 6, 6, 1]);
      g.dispose();
    }
  } finally {
    x.dispose();
    clf.dispose();
  }
});

Deno.test("gradients through a dilated Conv2D are a 422 naming the layer on every backend; forward passes work", async () => {
  await setupBackend();
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [8, 8, 1],
        filters: 2,
        kernelSize: 3,
        dilationRate: 2,
        name: "dil",
      }),
      tf.layers.flatten({ name: "f" }),
      tf.layers.dense({ units: 2, name: "d" }),
    ],
  });
  const saved = await saveBundle(m);
  m.dispose();
  const clf = await loadClassifier(parseBundle(saved.modelJson, saved.weights, LIMITS));
  const x = tf.zeros([2, 8, 8, 1]) as tf.Tensor4D;
  try {
    tf.dispose(clf.logits(x));
    assert.throws(
      () => tf.grad((v: tf.Tensor) => clf.logits(v as tf.Tensor4D).sum())(x),
      (e) =>
        e instanceof UnsupportedModelError &&
        /layer 'dil' \(Conv2D\) cannot be differentiated with dilation_rate \[2,2\]/.test(
          e.message,
        ),
    );
  } finally {
    x.dispose();
    clf.dispose();
  }
});

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../_helpers.ts";
import { LimitExceededError, UnsupportedModelError } from "../../src/errors.ts";
import {
  activationBytes,
  budgetOf,
  checkActivationBudget,
  GRADIENT_FACTOR,
  maxBatchFor,
  planActivations,
} from "../../src/io/activation_budget.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** The Keras-style topology tfjs writes for `model` (what a bundle's modelTopology holds). */
function topologyOf(model: tf.LayersModel): Json {
  return JSON.parse(JSON.stringify(model.toJSON(null, false)));
}

/** Output shapes tfjs computed for every leaf layer call, by `outer/inner` path. */
function tfjsShapes(model: tf.LayersModel, prefix = "", out = new Map<string, Json>()) {
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) {
      tfjsShapes(layer, `${prefix}${layer.name}/`, out);
      continue;
    }
    if (layer.getClassName() === "InputLayer") continue;
    // A node's outputShapes is one shape, or a list of shapes for several outputs.
    const shapes = layer.inboundNodes.map((n) => {
      const s = n.outputShapes as Json;
      return Array.isArray(s[0]) && s.length === 1 ? s[0] : s;
    });
    out.set(`${prefix}${layer.name}`, shapes);
  }
  return out;
}

/** Asserts that the static pass's shapes equal tfjs', call for call. */
function assertSameShapes(model: tf.LayersModel, what: string): void {
  const plan = planActivations(topologyOf(model));
  const ours = new Map<string, Json[]>();
  for (const l of plan.layers) {
    if (l.className === "InputLayer") continue;
    const list = ours.get(l.path) ?? [];
    list.push(l.outputShapes.length === 1 ? [null, ...l.outputShapes[0]] : l.outputShapes);
    ours.set(l.path, list);
  }
  const theirs = tfjsShapes(model);
  for (const [path, shapes] of theirs) {
    // Nested models' inner layers keep the node of their own construction, with the same shapes.
    const mine = ours.get(path);
    assert.ok(mine, `${what}: the static pass has no call of '${path}'`);
    const want = shapes[shapes.length - 1] as (number | null)[];
    // tfjs leaves a Reshape's inferred dimension unknown (null) where the pass knows it.
    const got = mine[0].map((d: number, i: number) => (want[i] === null ? null : d));
    assert.deepEqual(got, want, `${what}: '${path}'`);
  }
  assert.equal(ours.size, theirs.size, `${what}: layer count`);
}

const seq = (layers: tf.layers.Layer[]) => tf.sequential({ layers });
const L = tf.layers;

Deno.test("planActivations() computes the same output shapes as tfjs for legal Sequential models", async () => {
  await setupBackend();
  const cases: [string, () => tf.LayersModel][] = [
    ["conv valid, strides 2", () =>
      seq([
        L.conv2d({ inputShape: [11, 13, 3], filters: 4, kernelSize: 3, strides: 2 }),
        L.flatten(),
        L.dense({ units: 3 }),
      ])],
    ["conv same, strides 3 on odd sizes", () =>
      seq([
        L.conv2d({
          inputShape: [10, 7, 1],
          filters: 2,
          kernelSize: [5, 2],
          strides: [3, 2],
          padding: "same",
        }),
        L.globalAveragePooling2d({}),
        L.dense({ units: 2, activation: "softmax" }),
      ])],
    ["dilated conv", () =>
      seq([
        L.conv2d({ inputShape: [16, 16, 2], filters: 3, kernelSize: 3, dilationRate: 2 }),
        L.conv2d({
          filters: 3,
          kernelSize: 2,
          dilationRate: [3, 1],
          padding: "same",
          useBias: false,
        }),
        L.flatten(),
        L.dense({ units: 2 }),
      ])],
    ["depthwise and separable", () =>
      seq([
        L.depthwiseConv2d({ inputShape: [9, 9, 2], kernelSize: 3, depthMultiplier: 3 }),
        L.separableConv2d({ filters: 5, kernelSize: 2, strides: 2, padding: "same" }),
        L.globalMaxPooling2d({}),
        L.dense({ units: 2 }),
      ])],
    ["pooling", () =>
      seq([
        L.maxPooling2d({ inputShape: [15, 14, 1], poolSize: 3 }),
        L.averagePooling2d({ poolSize: [2, 3], strides: 1, padding: "same" }),
        L.maxPooling2d({ poolSize: 2, strides: [1, 2] }),
        L.flatten(),
        L.dense({ units: 2 }),
      ])],
    ["padding, cropping, upsampling", () =>
      seq([
        L.zeroPadding2d({ inputShape: [5, 6, 1], padding: [[1, 2], [0, 3]] }),
        L.upSampling2d({ size: [2, 3] }),
        L.cropping2D({ cropping: [[1, 0], [2, 4]] }),
        L.zeroPadding2d({ padding: 2 }),
        L.cropping2D({ cropping: 1 }),
        L.flatten(),
        L.dense({ units: 2 }),
      ])],
    ["reshape with an inferred dimension, normalisation, activations", () =>
      seq([
        L.reshape({ inputShape: [4, 4, 1], targetShape: [2, 2, 4] }),
        L.batchNormalization({}),
        L.layerNormalization({}),
        L.dropout({ rate: 0.5 }),
        L.activation({ activation: "relu" }),
        L.reLU({}),
        L.leakyReLU({}),
        L.elu({}),
        L.prelu({}),
        L.flatten(),
        L.dense({ units: 3 }),
        L.softmax({}),
      ])],
    ["channels_first", () =>
      seq([
        L.conv2d({
          inputShape: [2, 9, 8],
          filters: 3,
          kernelSize: 2,
          dataFormat: "channelsFirst",
        }),
        L.zeroPadding2d({ padding: 1, dataFormat: "channelsFirst" }),
        L.upSampling2d({ size: [2, 1], dataFormat: "channelsFirst" }),
        L.flatten(),
        L.dense({ units: 2 }),
      ])],
    ["reshape with an inferred dimension (tfjs leaves it null)", () =>
      seq([
        L.reshape({ inputShape: [4, 4, 1], targetShape: [2, -1, 4] }),
        L.dense({ units: 3 }),
        L.reshape({ targetShape: [12] }),
        L.dense({ units: 2 }),
      ])],
    [
      "dense on rank 4",
      () => seq([L.dense({ inputShape: [3, 3, 2], units: 4 }), L.flatten(), L.dense({ units: 2 })]),
    ],
  ];
  for (const [what, make] of cases) {
    const model = make();
    try {
      assertSameShapes(model, what);
    } finally {
      model.dispose();
    }
  }
});

Deno.test("planActivations() computes the same output shapes as tfjs for Functional and nested models", async () => {
  await setupBackend();
  const x = tf.input({ shape: [8, 8, 3] });
  const a = L.conv2d({ filters: 4, kernelSize: 3, padding: "same", name: "a" }).apply(
    x,
  ) as tf.SymbolicTensor;
  const b = L.conv2d({ filters: 4, kernelSize: 1, name: "b" }).apply(x) as tf.SymbolicTensor;
  const sum = L.add({ name: "sum" }).apply([a, b]) as tf.SymbolicTensor;
  const cat = L.concatenate({ name: "cat" }).apply([sum, x]) as tf.SymbolicTensor;
  const shared = L.conv2d({ filters: 7, kernelSize: 3, name: "shared" });
  const s1 = shared.apply(cat) as tf.SymbolicTensor;
  const s2 = shared.apply(
    L.zeroPadding2d({ padding: 2, name: "pad" }).apply(cat) as tf.SymbolicTensor,
  ) as tf.SymbolicTensor;
  const g1 = L.globalAveragePooling2d({ name: "g1" }).apply(s1) as tf.SymbolicTensor;
  const g2 = L.globalMaxPooling2d({ name: "g2" }).apply(s2) as tf.SymbolicTensor;
  const m = L.multiply({ name: "mul" }).apply([g1, g2]) as tf.SymbolicTensor;
  const avg = L.average({ name: "avg" }).apply([m, g1]) as tf.SymbolicTensor;
  const mx = L.maximum({ name: "max" }).apply([avg, g2]) as tf.SymbolicTensor;
  const out = L.dense({ units: 3, name: "out" }).apply(mx) as tf.SymbolicTensor;
  const functional = tf.model({ inputs: x, outputs: out });
  const plan = planActivations(topologyOf(functional));
  const calls = plan.layers.filter((l) => l.path === "shared").map((l) => l.outputShapes[0]);
  // The shared layer is called twice, on 8×8 and on 12×12 inputs.
  assert.deepEqual(calls, [[6, 6, 7], [10, 10, 7]]);
  assert.deepEqual(plan.layers.find((l) => l.path === "cat")!.outputShapes, [[8, 8, 7]]);
  assert.deepEqual(plan.layers.at(-1)!.outputShapes, [[3]]);
  functional.dispose();

  const inner = seq([
    L.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, name: "inner_conv" }),
    L.maxPooling2d({ poolSize: 2, name: "inner_pool" }),
  ]);
  const outer = seq([inner, L.flatten({ name: "f" }), L.dense({ units: 2, name: "d" })]);
  try {
    assertSameShapes(outer, "nested Sequential");
    const plan2 = planActivations(topologyOf(outer));
    assert.deepEqual(plan2.layers.map((l) => l.path), [
      `${inner.name}/inner_conv`,
      `${inner.name}/inner_pool`,
      "f",
      "d",
    ]);
  } finally {
    outer.dispose();
  }
});

/** A Sequential topology from plain layer configs (first one carries the input shape). */
function sequential(input: number[], layers: [string, Json][]): Json {
  return {
    class_name: "Sequential",
    config: {
      name: "m",
      layers: layers.map(([class_name, config], i) => ({
        class_name,
        config: {
          name: `l${i}`,
          ...(i === 0 ? { batch_input_shape: [null, ...input] } : {}),
          ...config,
        },
      })),
    },
  };
}

function refuses(topology: Json, pattern: RegExp, what: string): void {
  assert.throws(
    () => planActivations(topology),
    (e) => e instanceof UnsupportedModelError && pattern.test(e.message),
    what,
  );
}

Deno.test("planActivations() refuses zero-size outputs and zero strides, dilations and sizes, naming the layer", () => {
  const conv = (c: Json) => sequential([10, 10, 1], [["Conv2D", { filters: 2, ...c }]]);
  refuses(
    conv({ kernel_size: [11, 11] }),
    /layer 'l0' \(Conv2D\) outputs 0×0/,
    "11×11 valid on 10×10",
  );
  refuses(conv({ kernel_size: 3, dilation_rate: 5 }), /l0.*outputs 0×0/, "dilated past the input");
  refuses(conv({ kernel_size: 3, strides: [0, 1] }), /strides \[0,1\]/, "zero stride");
  refuses(conv({ kernel_size: 3, strides: 0 }), /strides 0/, "zero stride as a number");
  refuses(conv({ kernel_size: 3, dilation_rate: 0 }), /dilation_rate 0/, "zero dilation");
  refuses(conv({ kernel_size: 0 }), /kernel_size 0/, "zero kernel");
  refuses(conv({ kernel_size: 3, strides: 1.5 }), /strides 1.5/, "fractional stride");
  refuses(conv({ kernel_size: 3, filters: 0 }), /filters 0/, "zero filters");
  refuses(conv({ kernel_size: 3, padding: "causal" }), /padding "causal"/, "causal padding in 2D");
  refuses(conv({}), /kernel_size undefined/, "no kernel size");
  const pool = (cls: string, c: Json) => sequential([10, 10, 1], [[cls, c]]);
  refuses(pool("MaxPooling2D", { pool_size: [0, 2] }), /pool_size \[0,2\]/, "zero pool");
  refuses(
    pool("AveragePooling2D", { pool_size: 11 }),
    /'l0' \(AveragePooling2D\) outputs 0×0/,
    "pool too big",
  );
  refuses(pool("MaxPooling2D", { pool_size: 2, strides: 0 }), /strides 0/, "zero pool stride");
  refuses(pool("UpSampling2D", { size: [0, 2] }), /size \[0,2\]/, "zero upsampling");
  refuses(
    pool("Cropping2D", { cropping: [[5, 5], [0, 0]] }),
    /crops its 10×10 input to 0×10/,
    "crop all",
  );
  refuses(pool("Cropping2D", { cropping: -1 }), /cropping -1/, "negative crop");
  refuses(
    pool("ZeroPadding2D", { padding: [[-3, 0], [0, 0]] }),
    /padding \[\[-3,0\]/,
    "negative pad",
  );
  refuses(pool("Reshape", { target_shape: [7, 7] }), /the size must not change/, "reshape size");
  refuses(pool("Reshape", { target_shape: [-1, -1] }), /more than one unknown/, "two unknowns");
  refuses(pool("Reshape", { target_shape: [3, -1] }), /cannot reshape 100 values/, "indivisible");
  refuses(pool("Dense", { units: 0 }), /units 0/, "zero units");
  refuses(
    sequential([10, 0, 1], [["Flatten", {}]]),
    /input shape \[null, 10, 0, 1\]/,
    "zero input",
  );
  refuses(
    sequential([10, 10, 1], [["Conv2D", { filters: 2, kernel_size: 3 }], [
      "GlobalAveragePooling2D",
      {},
    ], [
      "MaxPooling2D",
      {},
    ]]),
    /'l2' \(MaxPooling2D\) needs an input of rank 4/,
    "pooling a flat tensor",
  );
});

Deno.test("planActivations() refuses duplicate layer names and merges that do not fit", () => {
  const dup = sequential([4, 4, 1], [["Flatten", {}], ["Dense", { units: 2 }]]);
  dup.config.layers[1].config.name = "l0";
  refuses(dup, /both named 'l0'/, "duplicate names");
  const fx = (mergeClass: string, conf: Json = {}) => ({
    class_name: "Model",
    config: {
      name: "f",
      layers: [
        {
          class_name: "InputLayer",
          name: "in",
          config: { name: "in", batch_input_shape: [null, 4, 4, 1] },
          inbound_nodes: [],
        },
        {
          class_name: "Conv2D",
          name: "a",
          config: { name: "a", filters: 2, kernel_size: 3 },
          inbound_nodes: [[["in", 0, 0, {}]]],
        },
        {
          class_name: mergeClass,
          name: "m",
          config: { name: "m", ...conf },
          inbound_nodes: [[["in", 0, 0, {}], ["a", 0, 0, {}]]],
        },
      ],
      input_layers: [["in", 0, 0]],
      output_layers: [["m", 0, 0]],
    },
  });
  refuses(fx("Add"), /cannot broadcast \[\[4, 4, 1\], \[2, 2, 2\]\]/, "add");
  refuses(fx("Concatenate"), /cannot concatenate/, "concatenate");
  refuses(fx("Concatenate", { axis: 0 }), /batch axis/, "concatenate on the batch axis");
  refuses(fx("Concatenate", { axis: 9 }), /axis 9/, "concatenate out of range");
});

Deno.test("the activation budget counts the batch and gradients and names the costliest layer", () => {
  const huge = sequential([28, 28, 1], [["UpSampling2D", { size: [100, 100] }], ["Flatten", {}], [
    "Dense",
    { units: 2 },
  ]]);
  const plan = planActivations(huge);
  assert.equal(plan.largest?.path, "l0");
  // 2800×2800 floats from the upsampling and again from the flatten.
  assert.ok(plan.bytesPerSample >= 2 * 2800 * 2800 * 4);
  const forward = activationBytes(plan, { batch: 3, backward: false });
  assert.equal(activationBytes(plan, { batch: 3, backward: true }), GRADIENT_FACTOR * forward);
  const budget = budgetOf(plan, 100 * 2 ** 20, true);
  assert.throws(
    () => checkActivationBudget(budget, 1),
    (e) =>
      e instanceof LimitExceededError && /'l0' \(UpSampling2D\)/.test(e.message) &&
      /Not even one image fits/.test(e.message),
  );
  const roomy = budgetOf(plan, 1024 * 2 ** 20, false);
  const fits = maxBatchFor(roomy);
  assert.ok(fits >= 1);
  checkActivationBudget(roomy, fits);
  assert.throws(
    () => checkActivationBudget(roomy, fits + 1),
    (e) => e instanceof LimitExceededError && new RegExp(`at most ${fits} fits`).test(e.message),
  );
  // A 1×1 convolution with 300,000 filters: one image's output alone is 300 MB.
  const wide = planActivations(
    sequential([8, 8, 1], [["Conv2D", { filters: 300_000, kernel_size: 1, activation: "relu" }]]),
  );
  assert.equal(wide.bytesPerSample, (3 * 64 + 3 * 64 * 300_000) * 4);
  // A single tensor beyond tfjs' int32 indexing is refused whatever the byte budget.
  const big = budgetOf(
    planActivations(sequential([50_000, 50_000, 1], [["Flatten", {}]])),
    Number.MAX_SAFE_INTEGER,
    false,
  );
  assert.throws(() => checkActivationBudget(big, 1), /more than the 2147483647 tfjs can index/);
});

Deno.test("planActivations() reads configs as tfjs does: camelCase keys, the last spelling wins", () => {
  const t = sequential([10, 10, 1], [["Conv2D", { filters: 2, kernel_size: 3, kernelSize: 11 }]]);
  refuses(t, /outputs 0×0/, "kernelSize after kernel_size wins");
  const ok = sequential([10, 10, 1], [["Conv2D", { filters: 2, kernelSize: 11, kernel_size: 3 }]]);
  assert.deepEqual(planActivations(ok).layers[0].outputShapes, [[8, 8, 2]]);
  const first = sequential([3, 10, 10], [["Conv2D", {
    filters: 2,
    kernel_size: 3,
    data_format: "channels_first",
  }]]);
  assert.deepEqual(planActivations(first).layers[0].outputShapes, [[2, 8, 8]]);
});

Deno.test("planActivations() refuses options tfjs only fails on when the layer runs", () => {
  const one = (cls: string, c: Json) => sequential([4, 4, 3], [[cls, c], ["Flatten", {}]]);
  refuses(
    one("Softmax", { axis: 1 }),
    /'l0' \(Softmax\) normalises over axis 1/,
    "softmax off the last axis",
  );
  refuses(one("Softmax", { axis: [2] }), /axis \[2\]/, "one listed axis off the last");
  refuses(one("Softmax", { axis: 9 }), /axis 9/, "axis out of range");
  // tfjs' Softmax layer defaults to axis 1, not -1: a softmax with no axis over [H, W, C] fails.
  refuses(one("Softmax", {}), /normalises over axis 1 .*tfjs' default is 1/, "default axis");
  planActivations(sequential([4], [["Softmax", {}]]));
  planActivations(one("Softmax", { axis: 3 }));
  planActivations(one("Softmax", { axis: -1 }));
  planActivations(one("Softmax", { axis: [1, 2] }));
  refuses(one("ReLU", { max_value: -1 }), /max_value -1/, "negative cap");
  refuses(
    one("ReLU", { max_value: 0 }),
    /max_value 0/,
    "a cap of 0 (constant output, no gradient)",
  );
  refuses(one("ReLU", { max_value: "6" }), /max_value "6"/, "a string cap");
  planActivations(one("ReLU", { max_value: 6 }));
  refuses(one("LeakyReLU", { alpha: "x" }), /alpha "x"/, "a string slope");
  refuses(
    one("Rescaling", { scale: [1, 2] }),
    /scale \[1,2\].*1 or 3 numbers/,
    "scale of the wrong length",
  );
  refuses(one("Rescaling", { scale: 1, offset: "x" }), /offset "x"/, "a string offset");
  planActivations(one("Rescaling", { scale: [1, 2, 3], offset: [0.5] }));
  refuses(one("Dropout", { rate: 0.5, noise_shape: [1, 2, 3] }), /noise_shape \[1,2,3\]/, "rank");
  refuses(one("Dropout", { rate: 0.5, noise_shape: [7, 1, 1, 3] }), /noise_shape/, "a batch entry");
  planActivations(one("Dropout", { rate: 0.5, noise_shape: [null, 1, 1, 3] }));
  refuses(one("BatchNormalization", { epsilon: "\u0000" }), /epsilon "\\u0000"/, "string epsilon");
  refuses(
    one("BatchNormalization", { epsilon: -1 }),
    /epsilon -1; it must be a number >= 0/,
    "< 0",
  );
  refuses(one("BatchNormalization", { momentum: "x" }), /momentum "x"/, "string momentum");
  refuses(one("LayerNormalization", { epsilon: [1] }), /epsilon \[1\]/, "array epsilon");
  planActivations(one("BatchNormalization", { epsilon: 1e-3, momentum: 0.99 }));
});

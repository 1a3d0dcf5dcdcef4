/**
 * Small models for attack tests, built and trained in-process from seeded code: a linear model
 * with known weights (gradients known in closed form) and a tiny CNN trained for about a second
 * on synthetic, separable 8×8 images.
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../../src/model/classifier.ts";
import { setupBackend } from "../_helpers.ts";

/** Wraps a logits model as a {@link Classifier} (no preprocessing). */
export function classifierOf(
  model: tf.LayersModel,
  inputShape: [number, number, number],
  numClasses: number,
): Classifier {
  return {
    model,
    inputShape,
    numClasses,
    logits: (x, training = false) => model.apply(x, { training }) as tf.Tensor2D,
  };
}

/** A deterministic PRNG (mulberry32): uniform numbers in [0,1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `logits = flatten(x) · W + b` with `W` given row-major `[D, K]`, D = H·W·C.
 */
export function linearClassifier(
  weights: Float32Array,
  bias: Float32Array,
  inputShape: [number, number, number],
): Classifier {
  const d = inputShape[0] * inputShape[1] * inputShape[2];
  const k = bias.length;
  const model = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape }),
      tf.layers.dense({ units: k, useBias: true }),
    ],
  });
  tf.tidy(() => model.layers[1].setWeights([tf.tensor2d(weights, [d, k]), tf.tensor1d(bias)]));
  return classifierOf(model, inputShape, k);
}

/**
 * `logits = tanh(flatten(x) · W1 + b1) · W2 + b2`, weights row-major (`W1` `[D, H]`, `W2` `[H, K]`):
 * small enough to differentiate by hand in tests, and not concave in x like a linear model's loss.
 */
export function mlpClassifier(
  w1: Float32Array,
  b1: Float32Array,
  w2: Float32Array,
  b2: Float32Array,
  inputShape: [number, number, number],
): Classifier {
  const d = inputShape[0] * inputShape[1] * inputShape[2];
  const [h, k] = [b1.length, b2.length];
  const model = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape }),
      tf.layers.dense({ units: h, activation: "tanh" }),
      tf.layers.dense({ units: k }),
    ],
  });
  tf.tidy(() => {
    model.layers[1].setWeights([tf.tensor2d(w1, [d, h]), tf.tensor1d(b1)]);
    model.layers[2].setWeights([tf.tensor2d(w2, [h, k]), tf.tensor1d(b2)]);
  });
  return classifierOf(model, inputShape, k);
}

export const SHAPE: [number, number, number] = [8, 8, 1];
export const CLASSES = 3;

/**
 * `n` images of 3 classes: a class-specific ±1 pattern of amplitude 0.15 over mid-grey, plus
 * uniform noise of ±0.1, clipped to [0,1]. Labels cycle 0, 1, 2, ...
 */
export function syntheticData(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const pattern = rng(12345);
  const d = SHAPE[0] * SHAPE[1] * SHAPE[2];
  const templates = Array.from(
    { length: CLASSES },
    () => Array.from({ length: d }, () => (pattern() < 0.5 ? -1 : 1)),
  );
  const r = rng(seed);
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % CLASSES;
    for (let j = 0; j < d; j++) {
      const v = 0.5 + 0.15 * templates[y[i]][j] + 0.2 * (r() - 0.5);
      x[i * d + j] = Math.min(1, Math.max(0, v));
    }
  }
  return { x, y };
}

let cnn: Promise<Classifier> | undefined;

/** conv(6, 3×3, relu) → maxpool 2 → flatten → dense(3), trained on 300 synthetic images. */
export function trainedCnn(): Promise<Classifier> {
  cnn ??= (async () => {
    await setupBackend();
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: SHAPE,
          filters: 6,
          kernelSize: 3,
          activation: "relu",
          kernelInitializer: init(1),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: CLASSES, kernelInitializer: init(2) }),
      ],
    });
    model.compile({
      optimizer: tf.train.adam(0.01),
      loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
    });
    const { x, y } = syntheticData(300, 7);
    const xs = tf.tensor4d(x, [300, ...SHAPE]);
    const ys = tf.oneHot(tf.tensor1d(y, "int32"), CLASSES);
    await model.fit(xs, ys, { epochs: 8, batchSize: 30, shuffle: false, verbose: 0 });
    tf.dispose([xs, ys]);
    return classifierOf(model, SHAPE, CLASSES);
  })();
  return cnn;
}

/** `n` held-out images as tensors (caller disposes). */
export function testBatch(n: number, seed = 99): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const d = syntheticData(n, seed);
  return { x: tf.tensor4d(d.x, [n, ...SHAPE]), y: tf.tensor1d(d.y, "int32") };
}

/** The tiny_cnn fixture (4 classes, 10×10×1) as a loaded classifier, with its 64 images. */
export async function tinyFixture(
  scaleLast?: number,
): Promise<{ clf: Classifier & { dispose(): void }; x: Float32Array; y: Int32Array }> {
  await setupBackend();
  const [{ parseBundle }, { loadClassifier }, { parseNpy }, { fixtureBytes }] = await Promise.all([
    import("../../src/io/model_bundle.ts"),
    import("../../src/model/load_classifier.ts"),
    import("../../src/io/npy.ts"),
    import("../_helpers.ts"),
  ]);
  const json = fixtureBytes("model.json");
  const weights = scaleLast === undefined
    ? fixtureBytes("weights.bin")
    : scaledLastLayer(json, fixtureBytes("weights.bin"), scaleLast);
  const clf = await loadClassifier(parseBundle(json, [{ name: "weights.bin", bytes: weights }], {
    maxModelJsonBytes: 1 << 20,
    maxWeightBytes: 1 << 22,
    maxParams: 1 << 20,
    maxLayers: 64,
  }));
  const x = Float32Array.from(parseNpy(fixtureBytes("x.npy")).data as Uint8Array, (v) => v / 255);
  const y = Int32Array.from(parseNpy(fixtureBytes("y.npy")).data as Int32Array);
  return { clf, x, y };
}

/**
 * A single-shard bundle's weights with the manifest's last two entries (the final Dense kernel
 * and bias) multiplied by `factor`: the same model with logits × factor, a deliberately masked
 * model when factor is 1e4 (softmax saturates, cross-entropy gradients underflow to 0).
 */
export function scaledLastLayer(modelJson: Uint8Array, weights: Uint8Array, factor: number) {
  const doc = JSON.parse(new TextDecoder().decode(modelJson));
  const ws = (doc.weightsManifest as { weights: { shape: number[] }[] }[]).flatMap((g) =>
    g.weights
  );
  const size = (w: { shape: number[] }) => w.shape.reduce((p, d) => p * d, 1);
  const last = size(ws[ws.length - 1]) + size(ws[ws.length - 2]);
  const bytes = weights.slice();
  const f = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  for (let i = f.length - last; i < f.length; i++) f[i] *= factor;
  return bytes;
}

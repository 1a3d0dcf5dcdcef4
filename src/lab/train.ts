/**
 * Training and evaluation of the lab's small CNN classifiers with TF.js.
 *
 * The loop is written out (shuffle with our own {@link Rng}, `optimizer.minimize` per batch
 * inside `tf.tidy`) rather than `model.fit`, so that the same seed gives the same weights and no
 * tensor outlives its step. The model outputs logits (linear last layer); the lab saves it with a
 * softmax output, as a user's model would be.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../errors.ts";
import { type Dataset, imageSize } from "./dataset.ts";
import { Rng } from "../random/rng.ts";

/** Convolution widths and dense width of {@link buildCnn}. */
export interface CnnSize {
  /** Filters of the two 3×3 convolutions. Default [32, 64]. */
  filters: [number, number];
  /** Units of the hidden dense layer. Default 128. */
  dense: number;
}

/** The customary small Fashion-MNIST CNN: conv32-pool-conv64-pool-dense128-dense(K). */
export const DEFAULT_CNN: CnnSize = { filters: [32, 64], dense: 128 };
/** A narrower net for the small synthetic images: trains in seconds. */
export const SMALL_CNN: CnnSize = { filters: [8, 16], dense: 32 };

/**
 * Mixes a seed and a layer index into a tfjs initializer seed; `stream` keeps two architectures'
 * seeds apart (default 0x1a7e, the CNN's).
 */
export function layerSeed(seed: number, layer: number, stream = 0x1a7e): number {
  return new Rng(seed, stream + layer).uint32() % 2147483647;
}

/**
 * Builds `conv(f1, 3×3, same, relu) - maxpool 2 - conv(f2) - maxpool 2 - flatten - dense(d, relu)
 * - dense(K)` with Glorot-uniform kernels seeded from `seed` and zero biases. Layers have fixed
 * names, so two builds serialise to the same `model.json`. The output is logits.
 */
export function buildCnn(
  inputShape: [number, number, number],
  numClasses: number,
  seed: number,
  size: CnnSize = DEFAULT_CNN,
): tf.Sequential {
  const init = (i: number) => tf.initializers.glorotUniform({ seed: layerSeed(seed, i) });
  const model = tf.sequential({ name: "lab_cnn" });
  model.add(tf.layers.conv2d({
    name: "conv1",
    inputShape,
    filters: size.filters[0],
    kernelSize: 3,
    padding: "same",
    activation: "relu",
    kernelInitializer: init(0),
  }));
  model.add(tf.layers.maxPooling2d({ name: "pool1", poolSize: 2 }));
  model.add(tf.layers.conv2d({
    name: "conv2",
    filters: size.filters[1],
    kernelSize: 3,
    padding: "same",
    activation: "relu",
    kernelInitializer: init(1),
  }));
  model.add(tf.layers.maxPooling2d({ name: "pool2", poolSize: 2 }));
  model.add(tf.layers.flatten({ name: "flatten" }));
  model.add(tf.layers.dense({
    name: "dense1",
    units: size.dense,
    activation: "relu",
    kernelInitializer: init(2),
  }));
  model.add(tf.layers.dense({ name: "logits", units: numClasses, kernelInitializer: init(3) }));
  return model;
}

export interface TrainOptions {
  /** Passes over the data. Default 3. */
  epochs?: number;
  /** Default 128. */
  batchSize?: number;
  /** Default "adam". */
  optimizer?: "adam" | "sgd";
  /** Default 1e-3 for Adam, 0.01 for SGD (momentum 0.9). */
  learningRate?: number;
  /** Seeds the shuffling. Default 0. */
  seed?: number;
  /** Called after each epoch (awaited), e.g. to evaluate or print progress. */
  onEpoch?: (log: EpochLog) => void | Promise<void>;
}

export interface EpochLog {
  /** 1-based. */
  epoch: number;
  /** Mean training cross-entropy over the epoch. */
  loss: number;
  /** Training accuracy over the epoch (on the possibly poisoned labels). */
  accuracy: number;
  /** Wall time of the epoch's training steps, in seconds. */
  seconds: number;
}

/** Copies images `order[from..to)` of `d` into a [0,1] float batch and their labels. */
function gather(
  d: Dataset,
  order: Int32Array,
  from: number,
  to: number,
): { x: Float32Array; y: Int32Array } {
  const size = imageSize(d);
  const x = new Float32Array((to - from) * size);
  const y = new Int32Array(to - from);
  for (let i = from; i < to; i++) {
    const k = order[i];
    const src = d.x.subarray(k * size, (k + 1) * size);
    const off = (i - from) * size;
    for (let j = 0; j < size; j++) x[off + j] = src[j] / 255;
    y[i - from] = d.y[k];
  }
  return { x, y };
}

/**
 * Trains `model` (logits output) on `d` with softmax cross-entropy, mini-batches in a seeded
 * order each epoch. Returns one {@link EpochLog} per epoch; leaves no tensor behind but the
 * model's own variables.
 *
 * @throws {ValidationError} epochs, batch size or learning rate out of range, or an empty set.
 */
export async function trainClassifier(
  model: tf.LayersModel,
  d: Dataset,
  opts: TrainOptions = {},
): Promise<EpochLog[]> {
  const { epochs = 3, batchSize = 128, optimizer: kind = "adam", seed = 0 } = opts;
  const lr = opts.learningRate ?? (kind === "adam" ? 1e-3 : 0.01);
  if (!Number.isInteger(epochs) || epochs < 0) {
    throw new ValidationError(`epochs must be a non-negative integer; got ${epochs}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ValidationError(`batch size must be a positive integer; got ${batchSize}`);
  }
  if (!(lr > 0 && Number.isFinite(lr))) {
    throw new ValidationError(`learning rate must be positive; got ${lr}`);
  }
  const n = d.y.length;
  if (n === 0) throw new ValidationError("cannot train on an empty dataset");
  const [, h, w, c] = d.shape;
  const k = d.numClasses;
  const optimizer = kind === "adam" ? tf.train.adam(lr) : tf.train.momentum(lr, 0.9);
  const rng = new Rng(seed, 0x5f1);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const logs: EpochLog[] = [];
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const t0 = performance.now();
      rng.shuffle(order);
      let lossSum = 0, correct = 0;
      for (let s = 0; s < n; s += batchSize) {
        const e = Math.min(n, s + batchSize);
        const batch = gather(d, order, s, e);
        let hits: tf.Scalar | undefined;
        const loss = tf.tidy(() => {
          const xs = tf.tensor4d(batch.x, [e - s, h, w, c]);
          const ys = tf.tensor1d(batch.y, "int32");
          return optimizer.minimize(() => {
            const logits = model.apply(xs, { training: true }) as tf.Tensor2D;
            hits = tf.keep(logits.argMax(1).equal(ys).sum());
            return tf.losses.softmaxCrossEntropy(tf.oneHot(ys, k), logits) as tf.Scalar;
          }, true)!;
        });
        const [l, hv] = await Promise.all([loss.data(), hits!.data()]);
        tf.dispose([loss, hits!]);
        lossSum += l[0] * (e - s);
        correct += hv[0];
      }
      const log = {
        epoch,
        loss: lossSum / n,
        accuracy: correct / n,
        seconds: (performance.now() - t0) / 1000,
      };
      logs.push(log);
      await opts.onEpoch?.(log);
    }
  } finally {
    optimizer.dispose();
  }
  return logs;
}

/** Predicted classes of every image of `d`, in batches of `batchSize` (default 500). */
export async function predictClasses(
  model: tf.LayersModel,
  d: Dataset,
  batchSize = 500,
): Promise<Int32Array> {
  const n = d.y.length;
  const [, h, w, c] = d.shape;
  const out = new Int32Array(n);
  const all = new Int32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  for (let s = 0; s < n; s += batchSize) {
    const e = Math.min(n, s + batchSize);
    const { x } = gather(d, all, s, e);
    const pred = tf.tidy(() =>
      (model.predict(tf.tensor4d(x, [e - s, h, w, c])) as tf.Tensor2D).argMax(1)
    );
    out.set(await pred.data() as Int32Array, s);
    pred.dispose();
  }
  return out;
}

/** Fraction of `d` whose predicted class equals its label (NaN for an empty set). */
export async function accuracyOn(model: tf.LayersModel, d: Dataset): Promise<number> {
  const pred = await predictClasses(model, d);
  let hits = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === d.y[i]) hits++;
  return pred.length ? hits / pred.length : NaN;
}

/**
 * Re-estimates the moving statistics of every batch-norm layer of a Sequential `model` from `d`
 * (PreciseBN: Wu & Johnson, "Rethinking 'Batch' in BatchNorm", arXiv 2105.07576): a forward pass
 * in training mode over `d` in batches of `batchSize` (default 128, in order), after which each
 * layer's moving mean is the exact mean of its inputs over `d` and its moving variance the mean of
 * the per-batch variances, each batch weighted by its size. Exponential moving averages with
 * Keras's momentum 0.99 need hundreds of steps to forget their initial 0 and 1; a short lab run
 * would otherwise save a model whose inference differs from what it was trained to compute.
 * Trainable weights are untouched. Returns false (and changes nothing) when the model has no
 * batch norm.
 *
 * @throws {ValidationError} an empty set or a bad batch size.
 */
export async function preciseBatchNorm(
  model: tf.Sequential,
  d: Dataset,
  opts: { batchSize?: number } = {},
): Promise<boolean> {
  const { batchSize = 128 } = opts;
  const bn = model.layers.filter((l) => l.getClassName() === "BatchNormalization");
  if (bn.length === 0) return false;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ValidationError(`batch size must be a positive integer; got ${batchSize}`);
  }
  const n = d.y.length;
  if (n === 0) throw new ValidationError("cannot estimate batch-norm statistics on no images");
  const [, h, w, c] = d.shape;
  const order = Int32Array.from({ length: n }, (_, i) => i);
  // Running sums of size-weighted batch means and variances, per batch-norm layer.
  let sums: tf.Tensor1D[][] = bn.map(() => []);
  try {
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      const { x } = gather(d, order, s, e);
      const next = tf.tidy(() => {
        let t: tf.Tensor = tf.tensor4d(x, [e - s, h, w, c]);
        const out: tf.Tensor1D[][] = [];
        for (const layer of model.layers) {
          const k = bn.indexOf(layer);
          if (k >= 0) {
            const axes = Array.from({ length: t.rank - 1 }, (_, i) => i);
            const { mean, variance } = tf.moments(t, axes);
            const weighted = [mean, variance].map((m) => tf.mul(m, e - s) as tf.Tensor1D);
            out[k] = sums[k].length ? weighted.map((m, j) => tf.add(sums[k][j], m)) : weighted;
          }
          t = layer.apply(t, { training: true }) as tf.Tensor;
        }
        return out;
      });
      tf.dispose(sums);
      sums = next;
      // One read per batch bounds the work queued on an asynchronous backend.
      await sums[0][0].data();
    }
    bn.forEach((layer, k) => {
      const [gamma, beta] = layer.getWeights();
      const [mean, variance] = sums[k].map((m) => tf.div(m, n));
      layer.setWeights([gamma, beta, mean, variance]);
      tf.dispose([mean, variance]);
    });
  } finally {
    tf.dispose(sums);
  }
  return true;
}

/**
 * Activations of one named layer, per image, for the feature-space detectors (spectral
 * signatures, activation clustering, SPECTRE). The default layer is the penultimate
 * representation, the input of the last Dense layer, where those papers look.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { UnprocessableError } from "../errors.ts";
import type { ImageBatch } from "../io/images.ts";
import type { Classifier, Preprocess } from "./classifier.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface FeatureOptions {
  /** Layer whose output is returned. Default: the input of the last Dense layer. */
  layer?: string;
  /** Images per forward pass. */
  batchSize: number;
  /** Checked between batches; its reason is thrown when aborted. */
  signal?: AbortSignal;
  /**
   * The normalisation `clf.logits` applies, `(x − mean)/std` per channel. The feature model is
   * built from `clf.model`, which does not see it, so the caller passes it again. Default none.
   */
  preprocess?: Preprocess;
  /** Also return the model's logits from the same forward pass. Default false. */
  logits?: boolean;
}

export interface Features {
  /** `[N, dim]`, row-major: the layer's output flattened per image. */
  data: Float32Array;
  dim: number;
  /** The layer used. */
  layer: string;
  /** `[N, K]` logits, when asked for. */
  logits?: Float32Array;
}

/** The symbolic tensor to read, and the name to report, for `layer` (default: penultimate). */
function resolveLayer(
  model: tf.LayersModel,
  layer?: string,
): { out: tf.SymbolicTensor; name: string } {
  const layers = model.layers;
  if (layer !== undefined) {
    const found = layers.find((l) => l.name === layer);
    if (found === undefined) {
      const names = layers.map((l) => l.name);
      throw new UnprocessableError(
        `the model has no layer named '${layer}'; its layers are: ${names.join(", ")}`,
        { layer, available: names },
      );
    }
    return { out: single(found.output, found.name), name: found.name };
  }
  for (let i = layers.length - 1; i >= 0; i--) {
    if (layers[i].getClassName() !== "Dense") continue;
    const input = single(layers[i].input, layers[i].name);
    // Report the layer that produced the tensor: that is the name a client would pass back.
    const producer = layers.find((l) => l.output === input);
    return { out: input, name: producer?.name ?? `input of ${layers[i].name}` };
  }
  if (layers.length >= 2) {
    const l = layers[layers.length - 2];
    return { out: single(l.output, l.name), name: l.name };
  }
  throw new UnprocessableError(
    "the model has no Dense layer and a single layer, so it has no penultimate representation; " +
      "name a layer in 'layer'",
  );
}

function single(t: tf.SymbolicTensor | tf.SymbolicTensor[], name: string): tf.SymbolicTensor {
  if (!Array.isArray(t)) return t;
  if (t.length === 1) return t[0];
  throw new UnprocessableError(
    `layer '${name}' has ${t.length} inputs or outputs; pick a layer with exactly one`,
  );
}

/**
 * Activations of `opts.layer` for every image of `images` (NHWC in [0,1]), `batchSize` images at
 * a time, read with `await data()`. The feature model shares `clf.model`'s layers and weights, so
 * nothing of it is disposed here (disposing it would free the classifier's weights).
 *
 * @throws {UnprocessableError} (422) an unknown layer name (the message lists the layers), or no
 *   layer that could serve as the default.
 * @throws the signal's reason when aborted.
 */
export async function featuresOf(
  clf: Classifier,
  images: ImageBatch,
  opts: FeatureOptions,
): Promise<Features> {
  const { out, name } = resolveLayer(clf.model, opts.layer);
  const modelOut = single(clf.model.outputs, "output");
  // When the layer is the output itself, one output serves both (tf.model rejects duplicates).
  const both = opts.logits === true && out !== modelOut;
  const outputs = both ? [out, modelOut] : [out];
  const featureModel = tf.model({ inputs: clf.model.inputs, outputs });
  const k = clf.numClasses;
  const logits = opts.logits ? new Float32Array(images.shape[0] * k) : undefined;
  const [n, h, w, c] = images.shape;
  const per = h * w * c;
  const pre = opts.preprocess;
  // The static shape may hold nulls (e.g. after a Reshape with -1): take the size from batch one.
  let dim = 0;
  let data = new Float32Array(0);
  for (let i = 0; i < n; i += opts.batchSize) {
    await yieldPoint(opts.signal);
    const m = Math.min(opts.batchSize, n - i);
    // A prefix of the model: its forward pass costs at most the whole model's.
    clf.checkBatch?.(m, false);
    const ys = tf.tidy(() => {
      let x: tf.Tensor = tf.tensor4d(images.data.subarray(i * per, (i + m) * per), [m, h, w, c]);
      if (pre !== undefined) x = x.sub(tf.tensor1d(pre.mean)).div(tf.tensor1d(pre.std));
      const res = featureModel.apply(x, { training: false }) as tf.Tensor | tf.Tensor[];
      const [a, z] = Array.isArray(res) ? res : [res];
      return z === undefined ? [a.reshape([m, -1])] : [a.reshape([m, -1]), z];
    });
    try {
      if (i === 0) {
        dim = ys[0].shape[1]!;
        data = new Float32Array(n * dim);
      }
      data.set(await ys[0].data() as Float32Array, i * dim);
      if (logits !== undefined) logits.set(await ys[both ? 1 : 0].data() as Float32Array, i * k);
    } finally {
      tf.dispose(ys);
    }
  }
  return { data, dim, layer: name, ...(logits ? { logits } : {}) };
}

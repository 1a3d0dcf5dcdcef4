/** Tiny classifiers and planted data sets shared by the detector tests. */
import * as tf from "@tensorflow/tfjs";
import type { ImageBatch } from "../../src/io/images.ts";
import type { Classifier } from "../../src/model/classifier.ts";
import { Rng } from "../../src/random/rng.ts";

/** Wraps a logits model as a {@link Classifier}; `dispose()` frees its weights. */
export function wrap(model: tf.LayersModel, inputShape: [number, number, number], k: number) {
  return {
    model,
    inputShape,
    numClasses: k,
    logits: (x: tf.Tensor4D) => model.apply(x) as tf.Tensor2D,
    dispose: () => model.dispose(),
  } satisfies Classifier & { dispose(): void };
}

/**
 * A classifier on `[1, 1, d]` "images" whose penultimate layer (`feat`, the default feature
 * layer) is the identity: the features a detector sees are the pixels themselves. `out` (d × k)
 * sets the logits `featᵀ out`.
 */
export function identityClassifier(d: number, k: number, out: Float32Array) {
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [1, 1, d], name: "flat" }));
  model.add(tf.layers.dense({ units: d, name: "feat" }));
  model.add(tf.layers.dense({ units: k, name: "out" }));
  tf.tidy(() => {
    model.getLayer("feat").setWeights([tf.eye(d), tf.zeros([d])]);
    model.getLayer("out").setWeights([tf.tensor2d(out, [d, k]), tf.zeros([k])]);
  });
  return wrap(model, [1, 1, d], k);
}

/** Features as `[n, 1, 1, d]` images; values must already lie in [0, 1]. */
export function asImages(features: Float32Array, d: number): ImageBatch {
  return { shape: [features.length / d, 1, 1, d], data: features };
}

/**
 * `k` classes of `perClass` feature vectors `0.5 + 0.04·N(0, I)` in d dims; the first
 * `poisoned` images of class 0 get `shift` added. Returns features in [0, 1], labels and truth.
 */
export function plantedFeatures(opts: {
  d: number;
  k: number;
  perClass: number;
  poisoned: number;
  shift: ArrayLike<number>;
  seed?: number;
}) {
  const { d, k, perClass, poisoned, shift, seed = 0 } = opts;
  const rng = new Rng(seed, 0xfea7);
  const n = k * perClass;
  const features = new Float32Array(n * d);
  const labels = new Int32Array(n);
  const isPoison = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / perClass);
    labels[i] = c;
    const planted = c === 0 && i % perClass < poisoned;
    isPoison[i] = planted ? 1 : 0;
    for (let j = 0; j < d; j++) {
      const v = 0.5 + 0.04 * rng.normal() + (planted ? shift[j] : 0);
      features[i * d + j] = Math.min(1, Math.max(0, v));
    }
  }
  return { features, labels, isPoison };
}

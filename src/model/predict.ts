/**
 * Batched inference: per image the predicted class, the top-k probabilities and optionally the
 * logits. Reads results with `await data()` only (synchronous reads crash WebGPU under Deno).
 */
import * as tf from "@tensorflow/tfjs";
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "./classifier.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface Prediction {
  index: number;
  class: number;
  top: { class: number; probability: number }[];
  logits?: number[];
}

/** Logits `[N, K]` of a batch, computed `batchSize` images at a time, as one host array. */
export async function logitsOf(
  clf: Classifier,
  images: ImageBatch,
  batchSize: number,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const [n, h, w, c] = images.shape;
  const k = clf.numClasses;
  const out = new Float32Array(n * k);
  const per = h * w * c;
  for (let i = 0; i < n; i += batchSize) {
    await yieldPoint(signal);
    const m = Math.min(batchSize, n - i);
    const z = tf.tidy(() => {
      const x = tf.tensor4d(images.data.subarray(i * per, (i + m) * per), [m, h, w, c]);
      return clf.logits(x);
    });
    out.set(await z.data() as Float32Array, i * k);
    z.dispose();
  }
  return out;
}

export async function predict(
  clf: Classifier,
  images: ImageBatch,
  opts: { topK: number; logits: boolean; batchSize: number; signal?: AbortSignal },
): Promise<Prediction[]> {
  const k = clf.numClasses;
  const z = await logitsOf(clf, images, opts.batchSize, opts.signal);
  const preds: Prediction[] = [];
  for (let i = 0; i < images.shape[0]; i++) {
    const row = z.subarray(i * k, (i + 1) * k);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    const e = Array.from(row, (v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    const order = [...e.keys()].sort((a, b) => e[b] - e[a] || a - b);
    preds.push({
      index: i,
      class: order[0],
      top: order.slice(0, Math.min(opts.topK, k)).map((j) => ({
        class: j,
        probability: e[j] / sum,
      })),
      logits: opts.logits ? Array.from(row) : undefined,
    });
  }
  return preds;
}

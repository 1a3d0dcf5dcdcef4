/**
 * The model's weights as the purification loop sees them: the trainable variables in a fixed
 * order, flattened to one float32 vector for the state (momentum, teacher, anchor) and hashed for
 * fingerprints.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import type { ImageBatch } from "../io/images.ts";
import { sha256Hex } from "./codec.ts";

/** The trainable variables, in the model's order. */
export function trainableVariables(clf: Classifier): tf.Variable[] {
  return clf.model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** Trainable scalars. */
export function paramCount(clf: Classifier): number {
  return trainableVariables(clf).reduce((s, v) => s + v.size, 0);
}

/** The trainable weights as one vector (read asynchronously). */
export async function flatWeights(vars: tf.Tensor[]): Promise<Float32Array> {
  const total = vars.reduce((s, v) => s + v.size, 0);
  const out = new Float32Array(total);
  let o = 0;
  for (const v of vars) {
    out.set(await v.data() as Float32Array, o);
    o += v.size;
  }
  return out;
}

/** Tensors shaped like `vars` from one vector (the caller disposes them). */
export function unflatten(vars: tf.Variable[], flat: Float32Array): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  let o = 0;
  for (const v of vars) {
    out.push(tf.tensor(flat.subarray(o, o + v.size), v.shape, "float32"));
    o += v.size;
  }
  return out;
}

/**
 * SHA-256 of every weight of the model (trainable or not) with its shape, in the model's order:
 * two models with equal fingerprints compute the same function (given the same topology).
 */
export async function modelFingerprint(clf: Classifier): Promise<string> {
  const parts: Uint8Array[] = [];
  for (const w of clf.model.weights) {
    const v = w.read();
    parts.push(new Uint8Array(Int32Array.from([v.rank, ...v.shape]).buffer));
    const data = await v.data() as Float32Array;
    parts.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
  }
  return sha256Hex(...parts);
}

/** SHA-256 of the extra set: its shape, its float32 pixels and its int32 labels. */
export function datasetFingerprint(images: ImageBatch, labels: Int32Array): Promise<string> {
  const d = images.data;
  return sha256Hex(
    new Uint8Array(Int32Array.from(images.shape).buffer),
    new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
    new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength),
  );
}

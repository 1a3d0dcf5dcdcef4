/**
 * One step of a cascade of attacks (APGD-T's targets, the ensemble's members): an attack run on
 * the images no earlier step broke, its successes written back into the whole batch's host arrays.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { AttackResult } from "./types.ts";

/**
 * Runs `attack` on the images `idx` of `x` (`[N, H, W, C]`) and `y` (`[N]`) only; for each image
 * it broke, writes its adversarial image into `into.adv` (host, laid out as `x`) and its
 * prediction into `into.predictions`. Disposes every tensor it made, the attack's adversarial
 * images included.
 *
 * @returns the images of `idx` the attack broke, and its queries.
 */
export async function attackRemaining(
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  idx: number[],
  into: { adv: Float32Array; predictions: Int32Array },
  attack: (xs: tf.Tensor4D, ys: tf.Tensor1D) => Promise<AttackResult>,
): Promise<{ broken: number[]; queries: number }> {
  const [, h, w, c] = x.shape;
  const per = h * w * c;
  const ids = tf.tensor1d(idx, "int32");
  const xs = tf.gather(x, ids) as tf.Tensor4D;
  const ys = tf.gather(y, ids) as tf.Tensor1D;
  try {
    const res = await attack(xs, ys);
    let out: Float32Array;
    try {
      out = await res.adversarial.data() as Float32Array;
    } finally {
      res.adversarial.dispose();
    }
    const broken: number[] = [];
    idx.forEach((i, j) => {
      if (!res.success[j]) return;
      into.predictions[i] = res.predictions[j];
      into.adv.set(out.subarray(j * per, (j + 1) * per), i * per);
      broken.push(i);
    });
    return { broken, queries: res.queries };
  } finally {
    tf.dispose([ids, xs, ys]);
  }
}

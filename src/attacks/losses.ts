/**
 * Per-sample attack losses on logits `[N, K]` with int32 labels `[N]`, and the objective every
 * attack here maximises.
 *
 * - Cross-entropy `CE(z, y) = logsumexp(z) − z_y`.
 * - Margin (Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", S&P 2017):
 *   `max_{j≠y} z_j − z_y`, unclamped so that it keeps ranking points after the decision flips
 *   (APGD and restarts pick the highest-loss point).
 *
 * All functions are pure tensor code: call them inside `tf.tidy` or a gradient function.
 */
import * as tf from "@tensorflow/tfjs";
import type { LossKind } from "./types.ts";

/** Per-sample cross-entropy `logsumexp(z) − z_y`, `[N]`. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const k = logits.shape[1];
    const picked = tf.sum(tf.mul(logits, tf.oneHot(labels, k)), 1);
    return tf.sub(tf.logSumExp(logits, 1), picked) as tf.Tensor1D;
  });
}

/** Per-sample margin `max_{j≠y} z_j − z_y`, `[N]`: positive exactly when `y` is not the argmax. */
export function marginLoss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const k = logits.shape[1];
    const hot = tf.cast(tf.oneHot(labels, k), "bool");
    const picked = tf.sum(tf.where(hot, logits, tf.zerosLike(logits)), 1);
    // -Infinity only ever meets `max`, whose gradient is an equality mask: no NaN reaches x.
    const others = tf.max(tf.where(hot, tf.fill(logits.shape, -Infinity), logits), 1);
    return tf.sub(others, picked) as tf.Tensor1D;
  });
}

/**
 * The objective an attack ascends, per sample `[N]`. Untargeted (`labels` = true classes):
 * `CE(z, y)` or `max_{j≠y} z_j − z_y`. Targeted (`labels` = targets): `−CE(z, t)` or
 * `z_t − max_{j≠t} z_j`, so ascending it moves towards the target.
 */
export function attackObjective(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  loss: LossKind,
  targeted: boolean,
): tf.Tensor1D {
  return tf.tidy(() => {
    const l = loss === "ce" ? crossEntropy(logits, labels) : marginLoss(logits, labels);
    return targeted ? tf.neg(l) : l;
  });
}

/**
 * Per-sample attack losses on logits `[N, K]` with int32 labels `[N]`, and the objective every
 * attack here maximises.
 *
 * - Cross-entropy `CE(z, y) = logsumexp(z) − z_y`.
 * - Margin (Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", S&P 2017):
 *   `max_{j≠y} z_j − z_y`, unclamped so that it keeps ranking points after the decision flips
 *   (APGD and restarts pick the highest-loss point).
 * - DLR, the difference of logits ratio (Croce & Hein, "Reliable evaluation of adversarial
 *   robustness with an ensemble of diverse parameter-free attacks", ICML 2020, Sec. 4):
 *   `−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)` with `z_π1 ≥ z_π2 ≥ …` the sorted logits, and its
 *   targeted form `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)`. Both are invariant to shifting and
 *   scaling the logits, so a model whose logits are multiplied by a large constant (saturating
 *   softmax and starving cross-entropy of gradient) gives DLR the same direction as before.
 *
 * All functions are pure tensor code: call them inside `tf.tidy` or a gradient function.
 */
import * as tf from "@tensorflow/tfjs";
import type { LossKind } from "./types.ts";

/** `z_y`, `[N]`. */
function pick(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.sum(tf.mul(logits, tf.oneHot(labels, logits.shape[1])), 1) as tf.Tensor1D;
}

/** Per-sample cross-entropy `logsumexp(z) − z_y`, `[N]`. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    // z_y before logsumexp: the tape's order fixes the order in which the gradient's terms are
    // summed into dz, and with it the purification's weights bit for bit.
    const picked = pick(logits, labels);
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

/** Added to DLR's denominator so that tied top logits divide by a tiny number, not 0. */
const DLR_EPS = 1e-12;

/**
 * The `k`-th largest logit per row (`k` = 1 is the maximum), `[N]`, differentiable in `z` (tfjs has
 * no gradient for `topk`): a logit is at most the k-th largest exactly when at least `k` logits are
 * ≥ it, and the k-th largest is the biggest of those. Ties count once per logit, as a sort would.
 */
export function kthLargest(logits: tf.Tensor2D, k: number): tf.Tensor1D {
  return largest(logits, [k])[0];
}

/** {@link kthLargest} for each of `ks`, from one comparison of every pair of logits. */
function largest(logits: tf.Tensor2D, ks: number[]): tf.Tensor1D[] {
  return tf.tidy(() => {
    const [n, m] = logits.shape;
    // atLeast[n, i] = #{j : z_j ≥ z_i}
    const atLeast = tf.sum(
      tf.cast(
        tf.greaterEqual(tf.reshape(logits, [n, 1, m]), tf.reshape(logits, [n, m, 1])),
        "float32",
      ),
      2,
    );
    const none = tf.fill(logits.shape, -Infinity);
    return ks.map((k) =>
      tf.max(tf.where(tf.greaterEqual(atLeast, k), logits, none), 1) as tf.Tensor1D
    );
  });
}

/**
 * Per-sample DLR loss `−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)`, `[N]` (Croce & Hein 2020, eq. 6):
 * positive exactly when `y` is not the argmax, and in [−1, 1]. Needs at least 3 classes.
 */
export function dlrLoss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const margin = marginLoss(logits, labels);
    const [first, third] = largest(logits, [1, 3]);
    const scale = tf.add(tf.sub(first, third), DLR_EPS);
    return tf.div(margin, scale) as tf.Tensor1D;
  });
}

/**
 * Per-sample targeted DLR loss `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)`, `[N]` (Croce & Hein 2020,
 * Sec. 4, the loss of APGD-T): ascending it raises the target's logit over the true class's.
 * Needs at least 4 classes.
 */
export function targetedDlrLoss(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  targets: tf.Tensor1D,
): tf.Tensor1D {
  return tf.tidy(() => {
    const gap = tf.sub(pick(logits, targets), pick(logits, labels));
    const [first, third, fourth] = largest(logits, [1, 3, 4]);
    const low = tf.mul(tf.add(third, fourth), 0.5);
    const scale = tf.add(tf.sub(first, low), DLR_EPS);
    return tf.div(gap, scale) as tf.Tensor1D;
  });
}

/** Fewest classes each loss is defined for (DLR's denominator reads the 3rd or 4th largest logit). */
export function minClasses(loss: LossKind, targeted: boolean): number {
  return loss === "dlr" ? (targeted ? 4 : 3) : 2;
}

/**
 * The objective an attack ascends, per sample `[N]`. Untargeted (`labels` = true classes):
 * `CE(z, y)` or `max_{j≠y} z_j − z_y`. Targeted (`labels` = targets): `−CE(z, t)` or
 * `z_t − max_{j≠t} z_j`, so ascending it moves towards the target. DLR: `dlrLoss(z, y)`
 * untargeted, `targetedDlrLoss(z, y, t)` targeted (which needs the true classes `trueLabels`).
 */
export function attackObjective(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  loss: LossKind,
  targeted: boolean,
  trueLabels?: tf.Tensor1D,
): tf.Tensor1D {
  return tf.tidy(() => {
    if (loss === "dlr") {
      if (!targeted) return dlrLoss(logits, labels);
      if (trueLabels === undefined) throw new Error("targeted DLR needs the true labels");
      return targetedDlrLoss(logits, trueLabels, labels);
    }
    const l = loss === "ce" ? crossEntropy(logits, labels) : marginLoss(logits, labels);
    return targeted ? tf.neg(l) : l;
  });
}

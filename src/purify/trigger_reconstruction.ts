/**
 * Trigger reconstruction for a suspected target class, after Neural Cleanse (Wang, Yao, Shan, Li,
 * Viswanath, Zheng & Zhao, "Neural Cleanse: Identifying and Mitigating Backdoor Attacks in Neural
 * Networks", S&P 2019): find a mask `m ∈ [0,1]^{H×W}` (shared by the channels) and a pattern
 * `p ∈ [0,1]^{H×W×C}` such that stamping `x' = (1 − m)·x + m·p` sends clean images of other classes
 * to the target, while `mean(m)` stays small:
 *
 *   min_{a,b}  CE(f((1 − m)·x + m·p), t) + λ·mean(m),   m = sigmoid(a), p = sigmoid(b)
 *
 * optimised with Adam written out here (β₁ 0.9, β₂ 0.999, ε 1e-8, bias-corrected) so that its
 * moments can travel in the round state. Untargeted PGD rarely produces a patch trigger's features
 * (DESIGN.md: 14% of adversarial examples land on a patch target); a reconstructed patch, stamped
 * onto clean images that keep their true labels, is what unlearns it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { crossEntropy } from "../attacks/losses.ts";
import { complementLoss } from "./train_step.ts";

const BETA1 = 0.9, BETA2 = 0.999, ADAM_EPS = 1e-8;
/** sigmoid(−4) ≈ 0.018: the search starts from a faint, nearly empty mask. */
export const MASK_INIT_LOGIT = -4;

/** Mask and pattern logits with their Adam moments, as tensors for the duration of a round. */
export interface TriggerVars {
  maskLogits: tf.Variable; // [H, W, 1]
  patternLogits: tf.Variable; // [H, W, C]
  maskM: tf.Variable;
  maskV: tf.Variable;
  patternM: tf.Variable;
  patternV: tf.Variable;
  /** Adam steps taken. */
  t: number;
}

/** Flat float32 arrays of a {@link TriggerVars}, the form the round state stores. */
export interface TriggerArrays {
  maskLogits: Float32Array;
  patternLogits: Float32Array;
  maskM: Float32Array;
  maskV: Float32Array;
  patternM: Float32Array;
  patternV: Float32Array;
  t: number;
}

/** A fresh search: faint mask, grey pattern, zero moments. */
export function initialTriggerArrays(h: number, w: number, c: number): TriggerArrays {
  return {
    maskLogits: new Float32Array(h * w).fill(MASK_INIT_LOGIT),
    patternLogits: new Float32Array(h * w * c),
    maskM: new Float32Array(h * w),
    maskV: new Float32Array(h * w),
    patternM: new Float32Array(h * w * c),
    patternV: new Float32Array(h * w * c),
    t: 0,
  };
}

export function triggerVars(a: TriggerArrays, h: number, w: number, c: number): TriggerVars {
  const v = (d: Float32Array, ch: number, trainable = false) =>
    tf.tidy(() => tf.variable(tf.tensor3d(d, [h, w, ch]), trainable));
  return {
    maskLogits: v(a.maskLogits, 1, true),
    patternLogits: v(a.patternLogits, c, true),
    maskM: v(a.maskM, 1),
    maskV: v(a.maskV, 1),
    patternM: v(a.patternM, c),
    patternV: v(a.patternV, c),
    t: a.t,
  };
}

export async function triggerArrays(v: TriggerVars): Promise<TriggerArrays> {
  const read = async (t: tf.Tensor) => (await t.data()) as Float32Array;
  return {
    maskLogits: await read(v.maskLogits),
    patternLogits: await read(v.patternLogits),
    maskM: await read(v.maskM),
    maskV: await read(v.maskV),
    patternM: await read(v.patternM),
    patternV: await read(v.patternV),
    t: v.t,
  };
}

export function disposeTriggerVars(v: TriggerVars | undefined): void {
  if (v) tf.dispose([v.maskLogits, v.patternLogits, v.maskM, v.maskV, v.patternM, v.patternV]);
}

/** `(1 − m)·x + m·p` for a batch `[N, H, W, C]` and mask/pattern values (call inside tidy). */
export function applyMask(x: tf.Tensor4D, m: tf.Tensor, p: tf.Tensor): tf.Tensor4D {
  return tf.add(tf.mul(x, tf.sub(1, m)), tf.mul(m, p)) as tf.Tensor4D;
}

/** {@link applyMask} from mask and pattern logits. Pure tensor code (call inside tidy). */
export function stamp(
  x: tf.Tensor4D,
  maskLogits: tf.Tensor,
  patternLogits: tf.Tensor,
): tf.Tensor4D {
  return applyMask(x, tf.sigmoid(maskLogits), tf.sigmoid(patternLogits));
}

/**
 * `sigmoid(a)` scaled so that its mean is at most `budget`: a hard cap on the trigger's area that
 * keeps the gradient (the scale is part of the graph).
 */
export function budgetMask(maskLogits: tf.Tensor, budget: number): tf.Tensor {
  return tf.tidy(() => {
    const m = tf.sigmoid(maskLogits);
    return tf.mul(m, tf.minimum(1, tf.div(budget, tf.add(tf.mean(m), 1e-12))));
  });
}

/** Mask logits whose sigmoid is the budgeted mask of `maskLogits` (for stamping it later). */
export function budgetedLogits(maskLogits: Float32Array, budget: number): Float32Array {
  const m = Float32Array.from(maskLogits, (a) => 1 / (1 + Math.exp(-a)));
  const mean = m.reduce((s, v) => s + v, 0) / Math.max(1, m.length);
  const scale = budget > 0 ? Math.min(1, budget / Math.max(mean, 1e-12)) : 1;
  return m.map((v) => {
    const q = Math.min(1 - 1e-6, Math.max(1e-6, v * scale));
    return Math.log(q / (1 - q));
  });
}

/**
 * One Adam step of the reconstruction on a batch of clean images of other classes. Returns the
 * objective, the share of the batch the stamp sends to `target`, and `mean(m)`. With the batch's
 * own labels as `target` the search is untargeted: the stamp must move each image off its label
 * (an all-to-all backdoor's trigger does that for every class), and `success` is that share.
 * `budget` > 0 (a share of the image): the mask is scaled down whenever its area exceeds that
 * share ({@link budgetMask}), so the search asks how far a trigger of that size can get.
 */
export async function reconstructionStep(
  clf: Classifier,
  v: TriggerVars,
  x: tf.Tensor4D,
  target: number | tf.Tensor1D,
  lr: number,
  l1Weight: number,
  budget = 0,
): Promise<{ loss: number; success: number; maskMean: number }> {
  const n = x.shape[0];
  const untargeted = typeof target !== "number";
  const stats = tf.tidy(() => {
    const t = untargeted ? target : tf.fill([n], target, "int32") as tf.Tensor1D;
    let hit: tf.Tensor = tf.scalar(0);
    let maskMean: tf.Tensor = tf.scalar(0);
    const { value, grads } = tf.variableGrads(() => {
      const m = budget > 0 ? budgetMask(v.maskLogits, budget) : tf.sigmoid(v.maskLogits);
      const p = tf.sigmoid(v.patternLogits);
      const xs = applyMask(x, m, p);
      const logits = clf.logits(xs, false);
      const same = tf.cast(tf.equal(tf.argMax(logits, 1), t), "float32");
      hit = tf.keep(tf.mean(untargeted ? tf.sub(1, same) : same));
      maskMean = tf.keep(tf.mean(m));
      // Untargeted: −log(1 − p_label), bounded below, drives every image off its own label.
      const fit = untargeted ? complementLoss(logits, t) : crossEntropy(logits, t);
      return tf.add(tf.mean(fit), tf.mul(maskMean, l1Weight)) as tf.Scalar;
    }, [v.maskLogits, v.patternLogits]);
    v.t += 1;
    const bc1 = 1 - BETA1 ** v.t, bc2 = 1 - BETA2 ** v.t;
    const pairs: [tf.Variable, tf.Variable, tf.Variable][] = [
      [v.maskLogits, v.maskM, v.maskV],
      [v.patternLogits, v.patternM, v.patternV],
    ];
    for (const [p, m, s] of pairs) {
      const g = grads[p.name];
      m.assign(tf.add(tf.mul(m, BETA1), tf.mul(g, 1 - BETA1)));
      s.assign(tf.add(tf.mul(s, BETA2), tf.mul(tf.square(g), 1 - BETA2)));
      const step = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(s, bc2)), ADAM_EPS));
      p.assign(tf.sub(p, tf.mul(step, lr)));
    }
    const out = tf.stack([value, hit, maskMean]);
    tf.dispose([hit, maskMean]);
    return out;
  });
  const [loss, success, maskMean] = await stats.data();
  stats.dispose();
  return { loss, success, maskMean };
}

/**
 * The one signature every attack shares: `(clf, x, y, options) → AttackResult`, with pixels
 * `[N, H, W, C]` in [0,1] and int32 labels `[N]`.
 */
import type * as tf from "@tensorflow/tfjs";

/** The threat model's norm: `linf` bounds every pixel's change, `l2` the whole image's. */
export type Norm = "linf" | "l2";

/**
 * `ce`: cross-entropy; `margin`: the Carlini-Wagner logit margin; `dlr`: the difference of logits
 * ratio of Croce & Hein 2020, targeted DLR when a target is given (see `losses.ts`).
 */
export type LossKind = "ce" | "margin" | "dlr";

/** A target class for every image, or one per image (targeted attacks). */
export type AttackTarget = number | Int32Array | readonly number[];

/** The default perturbation budget, 8/255: the customary L-inf budget for 8-bit images. */
export const DEFAULT_EPS = 8 / 255;

/** Options every attack takes. */
export interface BaseAttackOptions {
  /** Perturbation budget in [0,1] pixel units. Default {@link DEFAULT_EPS}. */
  eps?: number;
  /** Loss whose gradient drives the attack. Default `"ce"`. */
  loss?: LossKind;
  /**
   * Targeted mode: drive each image to this class (minimise CE to it, or maximise its margin);
   * success means the prediction equals the target. Absent: untargeted, success means the
   * prediction differs from the label.
   */
  target?: AttackTarget;
  /**
   * Targeted mode only: what counts as success. `"target"`: the prediction equals the target;
   * `"misclassified"`: it differs from the label, the target only steering the loss (APGD-T in
   * AutoAttack). Default `"target"`.
   */
  targetSuccess?: "target" | "misclassified";
  /** Checked between steps; an aborted signal stops the attack and rethrows its reason. */
  signal?: AbortSignal;
}

export interface AttackResult {
  /** `[N, H, W, C]` in [0,1], within the eps-ball of `x`. The caller disposes it. */
  adversarial: tf.Tensor4D;
  /** Per image: the attack's goal holds at `adversarial`. */
  success: boolean[];
  /** Per image: the class the model predicts at `adversarial`. */
  predictions: Int32Array;
  /** Per-image gradient evaluations (one forward and one backward pass each), summed. */
  queries: number;
}

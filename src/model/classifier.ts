/**
 * The one view of a model that attacks, detectors, metrics and purification share.
 *
 * `logits` always returns pre-softmax scores: a bundle whose last layer ends in softmax is loaded
 * with that activation switched to linear (and restored on save), because losses on
 * probabilities saturate and starve attacks of gradient.
 */
import type * as tf from "@tensorflow/tfjs";

/** Per-channel normalisation the model expects: it sees `(x - mean) / std` for pixels x in [0,1]. */
export interface Preprocess {
  mean: number[];
  std: number[];
}

export interface Classifier {
  /** The underlying Keras-style model (outputs logits). Trainable. */
  readonly model: tf.LayersModel;
  /** `[H, W, C]` the model accepts. */
  readonly inputShape: [number, number, number];
  readonly numClasses: number;
  /**
   * Logits `[N, K]` for pixels `[N, H, W, C]` in [0,1]; applies `preprocess` first. A loaded
   * classifier refuses (413) a batch whose activations exceed its budget before computing.
   */
  logits(x: tf.Tensor4D, training?: boolean): tf.Tensor2D;
  /**
   * Throws `LimitExceededError` (413) when `n` images (with gradients when `backward`; default:
   * whether a gradient tape is recording) would exceed the activation budget. Absent on
   * classifiers built by hand, which have no budget.
   */
  checkBatch?(n: number, backward?: boolean): void;
  /**
   * The largest batch whose activations (with gradients when `backward`; default true) fit the
   * budget, 0 when not even one image does. Absent on classifiers built by hand (no budget).
   */
  maxBatch?(backward?: boolean): number;
}

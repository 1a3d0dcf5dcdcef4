/** Keeping the best point per sample across restarts: a successful one, else the highest loss. */
import * as tf from "@tensorflow/tfjs";
import { readFlag } from "./early_stop.ts";
import { perImage } from "./norms.ts";

/** One restart's outcome, per sample. */
export interface Candidate {
  adv: tf.Tensor4D;
  /** bool `[N]`. */
  success: tf.Tensor1D;
  /** The objective at `adv`, `[N]`. */
  loss: tf.Tensor1D;
}

/**
 * Per sample, `next` replaces `best` when it succeeds and `best` did not, or when neither succeeds
 * and `next` has the higher loss; an earlier success is never displaced. Consumes (disposes) both
 * arguments and returns a fresh candidate.
 */
export function keepBest(best: Candidate | undefined, next: Candidate): Candidate {
  if (best === undefined) return next;
  const merged = tf.tidy(() => {
    const fresh = tf.logicalAnd(next.success, tf.logicalNot(best.success));
    const higher = tf.logicalAnd(
      tf.logicalNot(tf.logicalOr(next.success, best.success)),
      tf.greater(next.loss, best.loss),
    );
    const take = tf.logicalOr(fresh, higher);
    return {
      adv: tf.where(perImage(take as tf.Tensor1D), next.adv, best.adv) as tf.Tensor4D,
      success: tf.logicalOr(best.success, next.success) as tf.Tensor1D,
      loss: tf.where(take, next.loss, best.loss) as tf.Tensor1D,
    };
  });
  disposeCandidate(best);
  disposeCandidate(next);
  return merged;
}

export function disposeCandidate(c: Candidate | undefined): void {
  if (c) tf.dispose([c.adv, c.success, c.loss]);
}

/** Whether every sample has succeeded: one host read of a scalar. */
export function allSucceeded(success: tf.Tensor1D): Promise<boolean> {
  return readFlag(tf.all(success));
}

/**
 * FGSM, the fast gradient sign method: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
 * Adversarial Examples", ICLR 2015. One L-inf step of size eps along the sign of the loss
 * gradient.
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { makeOracle } from "./oracle.ts";
import { projectLinf } from "./projection.ts";
import { type AttackResult, type BaseAttackOptions, DEFAULT_EPS } from "./types.ts";
import { checkAttackOptions } from "./validate.ts";

/** FGSM takes only the shared options; its norm is always L-inf. */
export type FgsmOptions = BaseAttackOptions;

/**
 * `x' = clip_[0,1](x + eps·sign(∇ₓ L))`, where L is the objective of `losses.ts`: the loss to the
 * true label (untargeted) or minus the loss to the target (targeted, i.e. a step down the target's
 * loss).
 *
 * @param clf the model under attack.
 * @param x clean images `[N, H, W, C]` in [0,1].
 * @param y int32 true labels `[N]`.
 * @param options `eps` (default 8/255), `loss` (default `"ce"`), `target` (default untargeted).
 * @returns adversarial images within L-inf eps of `x` (caller disposes), success per image,
 *   predictions; `queries` = N.
 */
export async function fgsm(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: FgsmOptions = {},
): Promise<AttackResult> {
  const eps = options.eps ?? DEFAULT_EPS;
  checkAttackOptions({ eps });
  options.signal?.throwIfAborted();
  const oracle = makeOracle(clf, y, options);
  try {
    const adv = tf.tidy(() => {
      const { grad } = oracle.evaluate(x);
      return projectLinf(tf.add(x, tf.mul(tf.sign(grad), eps)), x, eps);
    });
    try {
      return { adversarial: adv, ...(await oracle.outcome(adv)), queries: x.shape[0] };
    } catch (err) {
      adv.dispose();
      throw err;
    }
  } finally {
    oracle.dispose();
  }
}

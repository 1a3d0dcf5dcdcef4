/**
 * MI-FGSM, momentum iterative FGSM: Dong, Liao, Pang, Su, Zhu, Hu & Li, "Boosting Adversarial
 * Attacks with Momentum", CVPR 2018. L-inf only: sign steps on a running sum of L1-normalised
 * gradients, which steadies the direction across steps.
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { EarlyStop } from "./early_stop.ts";
import { l1Norms, perImage } from "./norms.ts";
import { makeOracle } from "./oracle.ts";
import { projectLinf } from "./projection.ts";
import { type AttackResult, type BaseAttackOptions, DEFAULT_EPS } from "./types.ts";
import { checkAttackOptions } from "./validate.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface MifgsmOptions extends BaseAttackOptions {
  /** Iterations T. Default 10. */
  steps?: number;
  /** Per-pixel step α. Default `eps/steps`, the paper's choice (T steps can just reach eps). */
  stepSize?: number;
  /** Decay μ of the accumulated gradient. Default 1.0 (the paper's); 0 gives I-FGSM. */
  momentum?: number;
  /** Freeze each image at its first successful iterate and stop when all have. Default true. */
  earlyStop?: boolean;
}

/**
 * `g⁰ = 0`, `x⁰ = x`; `gᵗ⁺¹ = μ·gᵗ + ∇L(xᵗ)/‖∇L(xᵗ)‖₁` (per image), `xᵗ⁺¹ = Π(xᵗ + α·sign(gᵗ⁺¹))`
 * with `Π` the L-inf projection onto the eps-ball ∩ [0,1]. Returns the last iterate, or with early
 * stopping the first at which each image succeeded. No random start.
 *
 * @param clf the model under attack.
 * @param x clean images `[N, H, W, C]` in [0,1].
 * @param y int32 true labels `[N]`.
 * @param options see {@link MifgsmOptions}; `eps` default 8/255, `loss` default `"ce"`.
 * @returns adversarial images within L-inf eps of `x` (caller disposes), success and prediction
 *   per image, `queries` (N per step run).
 */
export async function mifgsm(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: MifgsmOptions = {},
): Promise<AttackResult> {
  const eps = options.eps ?? DEFAULT_EPS;
  const steps = options.steps ?? 10;
  const alpha = options.stepSize ?? eps / steps;
  const mu = options.momentum ?? 1.0;
  const earlyStop = options.earlyStop ?? true;
  checkAttackOptions({ eps, steps, stepSize: alpha, momentum: mu });
  options.signal?.throwIfAborted();

  const n = x.shape[0];
  const oracle = makeOracle(clf, y, options);
  let adv = tf.clone(x);
  let g: tf.Tensor4D = tf.zerosLike(x);
  let active: tf.Tensor1D | undefined = earlyStop ? tf.ones([n], "bool") : undefined;
  const stop = earlyStop ? new EarlyStop() : undefined;
  let queries = 0;
  try {
    for (let t = 0; t < steps; t++) {
      await yieldPoint(options.signal);
      const [cur, mom, act] = [adv, g, active];
      const next = tf.tidy(() => {
        const { logits, grad } = oracle.evaluate(cur);
        const l1 = tf.maximum(l1Norms(grad), 1e-37) as tf.Tensor1D;
        const accumulated = tf.add(tf.mul(mom, mu), tf.div(grad, perImage(l1))) as tf.Tensor4D;
        const stepped = projectLinf(
          tf.add(cur, tf.mul(tf.sign(accumulated), alpha)),
          x,
          eps,
        );
        if (act === undefined) return { adv: stepped, g: accumulated };
        const still = tf.logicalAnd(act, tf.logicalNot(oracle.success(logits))) as tf.Tensor1D;
        return {
          adv: tf.where(perImage(still), stepped, cur) as tf.Tensor4D,
          g: accumulated,
          active: still,
          keepGoing: tf.any(still),
        };
      });
      queries += n;
      tf.dispose([cur, mom]);
      adv = next.adv;
      g = next.g;
      if (act !== undefined) {
        act.dispose();
        active = next.active!;
        if (!(await stop!.proceed(next.keepGoing!))) break;
      }
    }
    const outcome = await oracle.outcome(adv);
    return { adversarial: adv, ...outcome, queries };
  } catch (err) {
    adv.dispose();
    throw err;
  } finally {
    await stop?.settle();
    tf.dispose(g);
    active?.dispose();
    oracle.dispose();
  }
}

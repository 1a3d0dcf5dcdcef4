/**
 * PGD, projected gradient descent (ascent on the loss): Madry, Makelov, Schmidt, Tsipras & Vladu,
 * "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018. L-inf steps follow
 * the gradient's sign, L2 steps the per-image normalised gradient; each step is projected back
 * onto the eps-ball ∩ [0,1].
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { bestOfRestarts, type Candidate, candidateAt } from "./best_of.ts";
import { EarlyStop } from "./early_stop.ts";
import { ascentDirection } from "./direction.ts";
import { perImage } from "./norms.ts";
import type { Oracle } from "./oracle.ts";
import { project } from "./projection.ts";
import { checkAttackOptions } from "./validate.ts";
import { type AttackResult, type BaseAttackOptions, DEFAULT_EPS, type Norm } from "./types.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface PgdOptions extends BaseAttackOptions {
  /** Default `"linf"`. */
  norm?: Norm;
  /** Gradient steps per restart. Default 10. */
  steps?: number;
  /**
   * Step length (L-inf: per pixel; L2: per image). Default `2.5·eps/steps`, Madry et al.'s rule
   * that lets a walk from any start reach the boundary; at the default 10 steps it is `eps/4`.
   */
  stepSize?: number;
  /** Independent runs from different random starts; the best per image is kept. Default 1. */
  restarts?: number;
  /** Start at a uniformly random point of the ball rather than at `x`. Default true. */
  randomStart?: boolean;
  /** Freeze each image at its first successful iterate and stop when all have. Default true. */
  earlyStop?: boolean;
  /** Seeds the random starts (restart r of this call draws from `deriveSeed(seed, r)`). Default 0. */
  seed?: number;
}

interface RunParams {
  eps: number;
  norm: Norm;
  steps: number;
  stepSize: number;
  earlyStop: boolean;
  signal?: AbortSignal;
}

/**
 * Runs PGD against `clf`.
 *
 * Per restart: `x⁰` = `x` or a random point of the ball; `xᵗ⁺¹ = Π(xᵗ + α·d(∇ L(xᵗ)))` with `d` the
 * steepest-ascent direction of the norm and `Π` the projection of `projection.ts`; the result is
 * the last iterate, or, with early stopping, the first iterate at which the image succeeded.
 * Across restarts the best per image is kept: a successful point, else the highest loss. Restarts
 * without a random start would repeat the same run, so they are skipped.
 *
 * @param clf the model under attack.
 * @param x clean images `[N, H, W, C]` in [0,1].
 * @param y int32 true labels `[N]`.
 * @param options see {@link PgdOptions}; `eps` default 8/255, `loss` default `"ce"`.
 * @returns adversarial images in the ball (caller disposes), success and prediction per image,
 *   and `queries`, the gradient evaluations made (N per step run).
 */
export async function pgd(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: PgdOptions = {},
): Promise<AttackResult> {
  const eps = options.eps ?? DEFAULT_EPS;
  const steps = options.steps ?? 10;
  const params: RunParams = {
    eps,
    norm: options.norm ?? "linf",
    steps,
    stepSize: options.stepSize ?? 2.5 * eps / steps,
    earlyStop: options.earlyStop ?? true,
    signal: options.signal,
  };
  const restarts = options.restarts ?? 1;
  const start = options.randomStart ?? true;
  const seed = options.seed ?? 0;
  checkAttackOptions({ eps, steps, stepSize: params.stepSize, restarts });
  options.signal?.throwIfAborted();

  return await bestOfRestarts(
    clf,
    x,
    y,
    options,
    { eps, norm: params.norm, restarts, randomStart: start, seed },
    params.earlyStop,
    (oracle, x0) => pgdRun(oracle, x, x0, params),
  );
}

/** One PGD run from `start` (consumed); returns its final point with success and loss there. */
async function pgdRun(
  oracle: Oracle,
  x: tf.Tensor4D,
  start: tf.Tensor4D,
  p: RunParams,
): Promise<{ candidate: Candidate; queries: number }> {
  const n = x.shape[0];
  let adv = start;
  let active: tf.Tensor1D | undefined = p.earlyStop ? tf.ones([n], "bool") : undefined;
  const stop = p.earlyStop ? new EarlyStop() : undefined;
  let queries = 0;
  try {
    for (let t = 0; t < p.steps; t++) {
      await yieldPoint(p.signal);
      const cur = adv;
      const act = active;
      const next = tf.tidy(() => {
        const { logits, grad } = oracle.evaluate(cur);
        const step = tf.mul(ascentDirection(grad, p.norm), p.stepSize);
        const stepped = project(tf.add(cur, step), x, p.eps, p.norm);
        if (act === undefined) return { adv: stepped };
        // Solved images keep the iterate at which they were first seen solved.
        const still = tf.logicalAnd(act, tf.logicalNot(oracle.success(logits))) as tf.Tensor1D;
        return {
          adv: tf.where(perImage(still), stepped, cur) as tf.Tensor4D,
          active: still,
          keepGoing: tf.any(still),
        };
      });
      queries += n;
      cur.dispose();
      adv = next.adv;
      if (act !== undefined) {
        act.dispose();
        active = next.active!;
        if (!(await stop!.proceed(next.keepGoing!))) break;
      }
    }
    return { candidate: candidateAt(oracle, adv), queries };
  } catch (err) {
    adv.dispose();
    throw err;
  } finally {
    await stop?.settle();
    active?.dispose();
  }
}

/** Keeping the best point per sample across restarts: a successful one, else the highest loss. */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { readFlag } from "./early_stop.ts";
import { perImage } from "./norms.ts";
import { makeOracle, type Oracle } from "./oracle.ts";
import { deriveSeed } from "../random/rng.ts";
import { randomStart } from "./random_start.ts";
import type { AttackResult, BaseAttackOptions, Norm } from "./types.ts";

/** One restart's outcome, per sample. */
export interface Candidate {
  adv: tf.Tensor4D;
  /** bool `[N]`. */
  success: tf.Tensor1D;
  /** The objective at `adv`, `[N]`. */
  loss: tf.Tensor1D;
  /** int32 predicted class at `adv`, `[N]`. */
  pred: tf.Tensor1D;
}

/** The candidate at `adv` (which it takes over): one forward pass for success, loss and class. */
export function candidateAt(oracle: Oracle, adv: tf.Tensor4D): Candidate {
  const at = tf.tidy(() => {
    const { logits, loss } = oracle.forward(adv);
    return {
      success: oracle.success(logits),
      loss,
      pred: tf.cast(tf.argMax(logits, 1), "int32") as tf.Tensor1D,
    };
  });
  return { adv, ...at };
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
      pred: tf.where(take, next.pred, best.pred) as tf.Tensor1D,
    };
  });
  disposeCandidate(best);
  disposeCandidate(next);
  return merged;
}

export function disposeCandidate(c: Candidate | undefined): void {
  if (c) tf.dispose([c.adv, c.success, c.loss, c.pred]);
}

/** Whether every sample has succeeded: one host read of a scalar. */
export function allSucceeded(success: tf.Tensor1D): Promise<boolean> {
  return readFlag(tf.all(success));
}

/**
 * Runs an iterative attack `restarts` times from random starts in the `norm` ball of radius
 * `eps` (or once from `x` without random start), keeping the best point per sample
 * ({@link keepBest}); with `earlyStop`, stops restarting once every sample has succeeded.
 * Owns the oracle and every intermediate tensor; the caller owns the returned `adversarial`.
 */
export async function bestOfRestarts(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: BaseAttackOptions,
  p: { eps: number; norm: Norm; restarts: number; randomStart: boolean; seed: number },
  earlyStop: boolean,
  run: (oracle: Oracle, x0: tf.Tensor4D) => Promise<{ candidate: Candidate; queries: number }>,
): Promise<AttackResult> {
  const oracle = makeOracle(clf, y, options);
  let best: Candidate | undefined;
  let queries = 0;
  try {
    const runs = p.randomStart ? p.restarts : 1;
    for (let r = 0; r < runs; r++) {
      const x0 = tf.tidy(() =>
        p.randomStart ? randomStart(x, p.eps, p.norm, deriveSeed(p.seed, r)) : tf.clone(x)
      );
      const out = await run(oracle, x0);
      queries += out.queries;
      best = keepBest(best, out.candidate);
      if (earlyStop && r + 1 < runs && await allSucceeded(best.success)) break;
    }
    // The best point's success and class were taken with it: no second forward pass.
    const [ok, pred] = await Promise.all([best!.success.data(), best!.pred.data()]);
    const adv = best!.adv;
    tf.dispose([best!.success, best!.loss, best!.pred]);
    best = undefined;
    return {
      adversarial: adv,
      success: Array.from(ok, (v) => v !== 0),
      predictions: Int32Array.from(pred),
      queries,
    };
  } finally {
    disposeCandidate(best);
    oracle.dispose();
  }
}

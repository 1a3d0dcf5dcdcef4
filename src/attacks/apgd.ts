/**
 * APGD, auto-PGD: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble
 * of diverse parameter-free attacks", ICML 2020 (Algorithm 1). PGD with momentum whose step size
 * needs no tuning: it starts at 2·eps and halves, per image, at checkpoints where progress has
 * stalled, restarting from the best point found. With `loss: "ce"` this is APGD-CE; with
 * `loss: "margin"` it maximises the CW margin `max_{j≠y} z_j − z_y` (close in spirit to APGD-DLR,
 * without DLR's rescaling by `z_π1 − z_π3`). L-inf and L2.
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { bestOfRestarts, type Candidate, candidateAt } from "./best_of.ts";
import { ascentDirection } from "./direction.ts";
import { EarlyStop } from "./early_stop.ts";
import { perImage } from "./norms.ts";
import type { Oracle } from "./oracle.ts";
import { project } from "./projection.ts";
import { type AttackResult, type BaseAttackOptions, DEFAULT_EPS, type Norm } from "./types.ts";
import { checkAttackOptions } from "./validate.ts";
import { UnprocessableError } from "../errors.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface ApgdOptions extends BaseAttackOptions {
  /** Default `"linf"`. */
  norm?: Norm;
  /** Gradient evaluations per restart, N_iter (the start point's included). Default 100. */
  steps?: number;
  /** Initial step size η⁽⁰⁾. Default `2·eps` (the paper's). */
  stepSize?: number;
  /** Independent runs from different random starts; the best per image is kept. Default 1. */
  restarts?: number;
  /** Start at a random point of the ball rather than at `x`. Default true. */
  randomStart?: boolean;
  /** Momentum α of the update. Default 0.75 (the paper's). */
  momentum?: number;
  /** Fraction ρ of loss-increasing steps below which the step halves. Default 0.75. */
  rho?: number;
  /**
   * True: each image's result is its first successful iterate, and the run stops when all have
   * succeeded. False: all steps run and the result is the highest-loss iterate when it succeeds,
   * else the latest successful iterate, else the highest-loss one. Default true.
   */
  earlyStop?: boolean;
  /** Seeds the random starts (restart r draws from `deriveSeed(seed, r)`). Default 0. */
  seed?: number;
}

/**
 * The checkpoints w_j = ⌈p_j·N_iter⌉ of the paper, `p₀ = 0`, `p₁ = 0.22`,
 * `p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`, restricted to iterations 1..N_iter−1 (a
 * checkpoint on the last iterate could change nothing) and de-duplicated. 100 steps give
 * [22, 41, 57, 70, 80, 87, 93, 99].
 */
export function apgdCheckpoints(steps: number): number[] {
  const p = [0, 0.22];
  for (;;) {
    const j = p.length - 1;
    const next = p[j] + Math.max(p[j] - p[j - 1] - 0.03, 0.06);
    if (next > 1 + 1e-9) break;
    p.push(next);
  }
  const out: number[] = [];
  for (const pj of p.slice(1)) {
    // Rounded first: 0.22·100 is 22.000000000000004 in doubles and must not become 23.
    const w = Math.ceil(Math.round(pj * steps * 1e9) / 1e9);
    if (w >= 1 && w <= steps - 1 && w !== out[out.length - 1]) out.push(w);
  }
  return out;
}

/**
 * The per-image step-halving decision at a checkpoint, bool `[N]`:
 * (1) fewer than `ρ·window` of the steps since the last checkpoint increased the loss, or
 * (2) the step was not halved at the last checkpoint and the best loss has not improved since.
 *
 * @param increases per image, the steps since the last checkpoint that raised the loss.
 * @param window steps since the last checkpoint, `w_j − w_{j−1}`.
 * @param reducedLast per image, whether the step was halved at the last checkpoint.
 * @param bestAtLast per image, the best loss at the last checkpoint.
 * @param best per image, the best loss now (never below `bestAtLast`).
 */
export function halveStep(
  increases: tf.Tensor1D,
  window: number,
  rho: number,
  reducedLast: tf.Tensor1D,
  bestAtLast: tf.Tensor1D,
  best: tf.Tensor1D,
): tf.Tensor1D {
  return tf.tidy(() => {
    const oscillating = tf.less(increases, rho * window);
    const stalled = tf.logicalAnd(tf.logicalNot(reducedLast), tf.lessEqual(best, bestAtLast));
    return tf.logicalOr(oscillating, stalled) as tf.Tensor1D;
  });
}

interface RunParams {
  eps: number;
  norm: Norm;
  steps: number;
  stepSize: number;
  alpha: number;
  rho: number;
  earlyStop: boolean;
  checkpoints: number[];
  signal?: AbortSignal;
}

/** Everything APGD carries per image between iterations. */
interface State {
  [key: string]: tf.Tensor;
  cur: tf.Tensor4D;
  prev: tf.Tensor4D;
  grad: tf.Tensor4D;
  loss: tf.Tensor1D;
  best: tf.Tensor4D;
  bestGrad: tf.Tensor4D;
  bestLoss: tf.Tensor1D;
  bestSuccess: tf.Tensor1D;
  eta: tf.Tensor1D;
  increases: tf.Tensor1D;
  reducedLast: tf.Tensor1D;
  bestAtLast: tf.Tensor1D;
  hit: tf.Tensor4D;
  everHit: tf.Tensor1D;
}

/**
 * Runs APGD against `clf`.
 *
 * Per restart (Algorithm 1): `x⁽⁰⁾` = random point of the ball (or `x`); η = `stepSize`;
 * `z⁽ᵏ⁺¹⁾ = Π(x⁽ᵏ⁾ + η·d(∇L(x⁽ᵏ⁾)))`,
 * `x⁽ᵏ⁺¹⁾ = Π(x⁽ᵏ⁾ + α(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − α)(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾))` (α = 1 on the first step), with
 * `d` the steepest-ascent direction of the norm. At each checkpoint of {@link apgdCheckpoints},
 * images for which {@link halveStep} holds halve η and resume from their best point, with the
 * momentum term reset. All of this state is per image; nothing is read back to the host except,
 * with early stopping, one flag per step.
 *
 * @param clf the model under attack.
 * @param x clean images `[N, H, W, C]` in [0,1].
 * @param y int32 true labels `[N]`.
 * @param options see {@link ApgdOptions}; `eps` default 8/255, `loss` default `"ce"`.
 * @returns adversarial images in the ball (caller disposes), success and prediction per image,
 *   `queries` (N per gradient evaluation).
 */
export async function apgd(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: ApgdOptions = {},
): Promise<AttackResult> {
  const eps = options.eps ?? DEFAULT_EPS;
  const steps = options.steps ?? 100;
  const params: RunParams = {
    eps,
    norm: options.norm ?? "linf",
    steps,
    stepSize: options.stepSize ?? 2 * eps,
    alpha: options.momentum ?? 0.75,
    rho: options.rho ?? 0.75,
    earlyStop: options.earlyStop ?? true,
    checkpoints: apgdCheckpoints(steps),
    signal: options.signal,
  };
  const restarts = options.restarts ?? 1;
  const start = options.randomStart ?? true;
  const seed = options.seed ?? 0;
  checkAttackOptions({ eps, steps, stepSize: params.stepSize, restarts });
  if (!(params.alpha >= 0 && params.alpha <= 1)) {
    throw new UnprocessableError(`momentum = ${params.alpha} is not allowed; allowed: 0..1`);
  }
  if (!(params.rho >= 0 && params.rho <= 1)) {
    throw new UnprocessableError(`rho = ${params.rho} is not allowed; allowed: 0..1`);
  }
  options.signal?.throwIfAborted();

  return await bestOfRestarts(
    clf,
    x,
    y,
    options,
    { eps, norm: params.norm, restarts, randomStart: start, seed },
    params.earlyStop,
    (oracle, x0) => apgdRun(oracle, x, x0, params),
  );
}

/** Replaces `old` by `next`, disposing the tensors of `old` that `next` does not carry over. */
function advance(old: State, next: State): State {
  const kept = new Set<tf.Tensor>(Object.values(next));
  tf.dispose(Object.values(old).filter((t) => !kept.has(t)));
  return next;
}

/** One APGD run from `start` (consumed); returns its chosen point with success and loss there. */
async function apgdRun(
  oracle: Oracle,
  x: tf.Tensor4D,
  start: tf.Tensor4D,
  p: RunParams,
): Promise<{ candidate: Candidate; queries: number }> {
  const n = x.shape[0];
  let s: State | undefined;
  let queries = 0;
  const stop = p.earlyStop ? new EarlyStop() : undefined;
  try {
    s = tf.tidy((): State => {
      const ev = oracle.evaluate(start);
      const ok = oracle.success(ev.logits);
      return {
        cur: start,
        prev: start,
        grad: ev.grad,
        loss: ev.loss,
        best: start,
        bestGrad: ev.grad,
        bestLoss: ev.loss,
        bestSuccess: ok,
        eta: tf.fill([n], p.stepSize) as tf.Tensor1D,
        increases: tf.zeros([n]) as tf.Tensor1D,
        reducedLast: tf.zeros([n], "bool") as tf.Tensor1D,
        bestAtLast: ev.loss,
        hit: start,
        everHit: ok,
      };
    });
    queries += n;
    let lastCheckpoint = 0;
    const checkpoints = new Set(p.checkpoints);
    for (let k = 0; k + 1 < p.steps; k++) {
      const st = s;
      if (stop && !(await stop.proceed(tf.tidy(() => tf.logicalNot(tf.all(st.everHit)))))) break;
      await yieldPoint(p.signal);
      const i = k + 1;
      const window = checkpoints.has(i) ? i - lastCheckpoint : 0;
      if (window > 0) lastCheckpoint = i;
      s = advance(s, tf.tidy(() => apgdStep(oracle, x, s!, p, k === 0 ? 1 : p.alpha, window)));
      queries += n;
    }
    const st = s;
    const adv = tf.tidy(() => {
      const hitOrBest = tf.where(perImage(st.everHit), st.hit, st.best) as tf.Tensor4D;
      return p.earlyStop ? hitOrBest : tf.where(perImage(st.bestSuccess), st.best, hitOrBest);
    }) as tf.Tensor4D;
    tf.dispose(Object.values(st));
    s = undefined;
    return { candidate: candidateAt(oracle, adv), queries };
  } finally {
    await stop?.settle();
    if (s) tf.dispose(Object.values(s));
    else if (queries === 0) start.dispose();
  }
}

/** One iteration: the momentum step, one gradient evaluation, and a checkpoint when `window > 0`. */
function apgdStep(
  oracle: Oracle,
  x: tf.Tensor4D,
  s: State,
  p: RunParams,
  alpha: number,
  window: number,
): State {
  const eta = perImage(s.eta);
  const z = project(tf.add(s.cur, tf.mul(ascentDirection(s.grad, p.norm), eta)), x, p.eps, p.norm);
  const moved = tf.add(
    s.cur,
    tf.add(tf.mul(tf.sub(z, s.cur), alpha), tf.mul(tf.sub(s.cur, s.prev), 1 - alpha)),
  );
  const xNew = project(moved as tf.Tensor4D, x, p.eps, p.norm);
  const ev = oracle.evaluate(xNew);
  const ok = oracle.success(ev.logits);
  // Early stopping keeps the first success; otherwise the latest one.
  const record = p.earlyStop ? tf.logicalAnd(ok, tf.logicalNot(s.everHit)) : ok;
  const better = tf.greater(ev.loss, s.bestLoss) as tf.Tensor1D;
  const next: State = {
    cur: xNew,
    prev: s.cur,
    grad: ev.grad,
    loss: ev.loss,
    best: tf.where(perImage(better), xNew, s.best) as tf.Tensor4D,
    bestGrad: tf.where(perImage(better), ev.grad, s.bestGrad) as tf.Tensor4D,
    bestLoss: tf.where(better, ev.loss, s.bestLoss) as tf.Tensor1D,
    // Not tf.where: the wasm Select kernel mishandles bool tensors (tfjs 4.22).
    bestSuccess: tf.logicalOr(
      tf.logicalAnd(better, ok),
      tf.logicalAnd(tf.logicalNot(better), s.bestSuccess),
    ) as tf.Tensor1D,
    eta: s.eta,
    increases: tf.add(s.increases, tf.cast(tf.greater(ev.loss, s.loss), "float32")) as tf.Tensor1D,
    reducedLast: s.reducedLast,
    bestAtLast: s.bestAtLast,
    hit: tf.where(perImage(record as tf.Tensor1D), xNew, s.hit) as tf.Tensor4D,
    everHit: tf.logicalOr(s.everHit, ok) as tf.Tensor1D,
  };
  if (window === 0) return next;
  const halve = halveStep(
    next.increases,
    window,
    p.rho,
    s.reducedLast,
    s.bestAtLast,
    next.bestLoss,
  );
  const h4 = perImage(halve);
  return {
    ...next,
    cur: tf.where(h4, next.best, next.cur) as tf.Tensor4D,
    prev: tf.where(h4, next.best, next.prev) as tf.Tensor4D,
    grad: tf.where(h4, next.bestGrad, next.grad) as tf.Tensor4D,
    loss: tf.where(halve, next.bestLoss, next.loss) as tf.Tensor1D,
    eta: tf.where(halve, tf.div(s.eta, 2), s.eta) as tf.Tensor1D,
    increases: tf.zerosLike(s.increases) as tf.Tensor1D,
    reducedLast: halve,
    bestAtLast: next.bestLoss,
  };
}

/**
 * APGD-T: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
 * parameter-free attacks", ICML 2020 (Sec. 4 and 5). APGD ({@link apgd}) on the targeted DLR loss
 * `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)`, run once per target class: the classes ranked 2nd,
 * 3rd, … by the model's logits at the clean image, up to `targets` of them. Each run attacks only
 * the images no earlier target has broken, and success is *misclassification* (the prediction
 * differs from the label): the target only steers the loss. Defaults are the paper's standard
 * setting: 9 targets, 1 restart each, 100 steps, L-inf.
 *
 * Needs at least 4 classes (the loss reads the 4th largest logit).
 */
import * as tf from "@tensorflow/tfjs";
import { UnprocessableError } from "../errors.ts";
import type { Classifier } from "../model/classifier.ts";
import { yieldPoint } from "../tensor/yield_point.ts";
import { apgd } from "./apgd.ts";
import { attackRemaining } from "./cascade_step.ts";
import { deriveSeed } from "../random/rng.ts";
import { type AttackResult, DEFAULT_EPS, type Norm } from "./types.ts";

export interface ApgdTargetedOptions {
  /** Default {@link DEFAULT_EPS}. */
  eps?: number;
  /** Default `"linf"`. */
  norm?: Norm;
  /** Target classes tried per image, the top ones after the predicted class. Default 9. */
  targets?: number;
  /** APGD steps per target and restart. Default 100. */
  steps?: number;
  /** APGD restarts per target. Default 1. */
  restarts?: number;
  /** Seeds the random starts (target r draws from `deriveSeed(seed, r)`). Default 0. */
  seed?: number;
  signal?: AbortSignal;
}

/** The standard setting of the paper: the most targets a model with `numClasses` classes allows. */
export const APGD_T_TARGETS = 9;

/** Target classes one image can have: all other classes, at most `targets`. */
export function targetCount(targets: number, numClasses: number): number {
  return Math.max(0, Math.min(targets, numClasses - 1));
}

/** Per image, the classes by decreasing clean logit (host arrays). */
async function rankedClasses(clf: Classifier, x: tf.Tensor4D): Promise<Int32Array[]> {
  const [n, k] = [x.shape[0], clf.numClasses];
  const logits = tf.tidy(() => clf.logits(x, false));
  let z: Float32Array;
  try {
    z = await logits.data() as Float32Array;
  } finally {
    logits.dispose();
  }
  return Array.from({ length: n }, (_, i) => {
    const row = z.subarray(i * k, (i + 1) * k);
    return Int32Array.from(Array.from({ length: k }, (_, j) => j).sort((a, b) => row[b] - row[a]));
  });
}

/**
 * Runs APGD-T against `clf` on clean images `x` (`[N, H, W, C]` in [0,1]) with true labels `y`
 * (int32 `[N]`).
 *
 * @returns adversarial images in the ball (caller disposes; the clean image where no target
 *   broke it), per image success = misclassified, predictions, and `queries` = gradient
 *   evaluations summed over targets.
 * @throws {UnprocessableError} fewer than 4 classes, bad numbers.
 */
export async function apgdTargeted(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: ApgdTargetedOptions = {},
): Promise<AttackResult> {
  const k = clf.numClasses;
  if (k < 4) {
    throw new UnprocessableError(
      `APGD-T's targeted DLR loss needs at least 4 classes; the model has ${k}`,
    );
  }
  const targets = options.targets ?? APGD_T_TARGETS;
  if (!(Number.isInteger(targets) && targets >= 1)) {
    throw new UnprocessableError(`targets = ${targets} is not allowed; allowed: an integer ≥ 1`);
  }
  const [n, h, w, c] = x.shape;
  const labels = Int32Array.from(await y.data());
  const ranked = await rankedClasses(clf, x);
  const adv = Float32Array.from(await x.data());
  const predictions = Int32Array.from(ranked, (r) => r[0]);
  const success = Array.from(predictions, (p, i) => p !== labels[i]);
  let queries = 0;

  for (let r = 1; r <= targetCount(targets, k); r++) {
    const idx = [...success.keys()].filter((i) => !success[i]);
    if (idx.length === 0) break;
    await yieldPoint(options.signal);
    const step = await attackRemaining(
      x,
      y,
      idx,
      { adv, predictions },
      (xs, ys) =>
        apgd(clf, xs, ys, {
          eps: options.eps ?? DEFAULT_EPS,
          norm: options.norm ?? "linf",
          steps: options.steps ?? 100,
          restarts: options.restarts ?? 1,
          seed: deriveSeed(options.seed ?? 0, r),
          loss: "dlr",
          target: idx.map((i) => ranked[i][r]),
          targetSuccess: "misclassified",
          earlyStop: true,
          signal: options.signal,
        }),
    );
    queries += step.queries;
    for (const i of step.broken) success[i] = true;
  }
  return { adversarial: tf.tensor4d(adv, [n, h, w, c]), success, predictions, queries };
}

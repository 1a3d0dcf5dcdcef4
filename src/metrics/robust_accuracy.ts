/**
 * Robust accuracy: the share of images the model still classifies correctly after an untargeted
 * L-inf PGD attack (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
 * ICLR 2018). Default PGD-20 at eps 8/255 with step eps/4 (2/255) and one random start, the
 * customary evaluation attack; an image wrong before the attack counts as not robust.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { pgd } from "../attacks/pgd.ts";
import { deriveSeed } from "../random/rng.ts";
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";
import { type ClassFigure, figures } from "./accuracy.ts";
import { checkLabels } from "../io/label_checks.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface RobustOptions {
  /** L-inf budget in [0,1] pixel units. Default 8/255. */
  eps?: number;
  /** PGD steps. Default 20. */
  steps?: number;
  /** Step size. Default eps/4. */
  stepSize?: number;
  /** Random restarts; an image counts as robust only if it survives all. Default 1. */
  restarts?: number;
  /** Seeds the random starts. Default 0. */
  seed?: number;
  /** Images attacked together. Default 128. */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface RobustReport {
  /** Share still correctly classified under the attack; null for an empty set. */
  robust_accuracy: number | null;
  robust: number;
  total: number;
  attack: {
    name: "pgd";
    norm: "linf";
    eps: number;
    steps: number;
    step_size: number;
    restarts: number;
  };
  per_class: ClassFigure[];
}

/**
 * Robust accuracy under untargeted L-inf PGD with the true labels.
 *
 * @throws {ShapeMismatchError} labels and images differ in count.
 * @throws {UnprocessableError} a label outside 0..K−1 or a bad attack setting.
 */
export async function robustAccuracy(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  opts: RobustOptions = {},
): Promise<RobustReport> {
  checkLabels(images, labels, clf.numClasses);
  const eps = opts.eps ?? 8 / 255;
  const steps = opts.steps ?? 20;
  const stepSize = opts.stepSize ?? eps / 4;
  const restarts = opts.restarts ?? 1;
  const bs = opts.batchSize ?? 128;
  const [n, h, w, c] = images.shape;
  const per = h * w * c;
  const ok = new Uint8Array(n);
  for (let i = 0, b = 0; i < n; i += bs, b++) {
    await yieldPoint(opts.signal);
    const m = Math.min(bs, n - i);
    const x = tf.tensor4d(images.data.subarray(i * per, (i + m) * per), [m, h, w, c]);
    const y = tf.tensor1d(labels.subarray(i, i + m), "int32");
    try {
      const r = await pgd(clf, x, y, {
        eps,
        steps,
        stepSize,
        restarts,
        randomStart: true,
        earlyStop: true,
        seed: deriveSeed(opts.seed ?? 0, b),
        signal: opts.signal,
      });
      r.adversarial.dispose();
      for (let j = 0; j < m; j++) ok[i + j] = r.success[j] ? 0 : 1;
    } finally {
      tf.dispose([x, y]);
    }
  }
  const f = figures(ok, labels, clf.numClasses);
  return {
    robust_accuracy: f.accuracy,
    robust: f.correct,
    total: n,
    attack: { name: "pgd", norm: "linf", eps, steps, step_size: stepSize, restarts },
    per_class: f.per_class,
  };
}

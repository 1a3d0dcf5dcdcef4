/**
 * STRIP (Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural Networks", ACSAC
 * 2019).
 *
 * A trigger dominates the prediction whatever else is in the image: superimpose a triggered image
 * on other images and the model still answers the target class with confidence, while a clean
 * image blended with others gives mixed, uncertain predictions. Per image, `blends` (default 16)
 * partners are drawn from the same set (seeded, never the image itself), each blend is
 * `alpha·x + (1 − alpha)·partner` (alpha 0.5), and the score is minus the mean Shannon entropy
 * (nats) of the model's softmax over the blends: LOW entropy = poisoned, so HIGH score = suspicious.
 *
 * Differences from the paper: partners come from the set under test (the paper assumes a held-out
 * clean set, which a user of this service may not have), so a clean image sometimes meets a
 * poisoned partner; averaging over 16 blends keeps that noise small at 10% poison. The paper's
 * superimposition adds images with saturation; we use a convex blend, which keeps pixels in
 * [0,1] without clipping. The default flag rule is the distribution-based `fpr` rule (the paper
 * sets its cut from a false-rejection rate on clean data).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../random/rng.ts";
import { flagByRule, type FlagRule } from "./thresholds.ts";
import type { Detector } from "./types.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface StripOptions {
  /** Blends per image. Default 16. */
  blends?: number;
  /** Weight of the image under test in each blend, in (0, 1). Default 0.5. */
  alpha?: number;
  /** How scores become flags. Default `{ rule: "fpr", fpr: 0.05 }`. */
  flagRule?: FlagRule;
  /** Seeds the choice of partners. Default 0. */
  seed?: number;
}

/**
 * STRIP over `images` (NHWC in [0,1], at least 2) with their `labels` (used only to group the
 * flag rule by class). `ctx.batchSize` counts blended images per forward pass. Score:
 * −(mean entropy of softmax over the blends), in nats (higher = more suspicious).
 */
export const strip: Detector<StripOptions> = async (clf, images, labels, options, ctx) => {
  const blends = options.blends ?? 16;
  const alpha = options.alpha ?? 0.5;
  const rule: FlagRule = options.flagRule ?? { rule: "fpr", fpr: 0.05 };
  const [n, h, w, c] = images.shape;
  const per = h * w * c;
  const src = images.data;
  const rng = new Rng(options.seed ?? 0, 0x5791);
  // Partner of blend j of image i; drawn up front so results do not depend on batch_size.
  const partners = new Int32Array(n * blends);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < blends; j++) {
      const p = rng.int(n - 1);
      partners[i * blends + j] = p >= i ? p + 1 : p;
    }
  }
  const entropySum = new Float64Array(n);
  const total = n * blends;
  const chunk = Math.max(1, ctx.batchSize);
  const buf = new Float32Array(chunk * per);
  for (let start = 0; start < total; start += chunk) {
    await yieldPoint(ctx.signal);
    const m = Math.min(chunk, total - start);
    for (let t = 0; t < m; t++) {
      const flat = start + t;
      const i = Math.floor(flat / blends);
      const a = i * per, b = partners[flat] * per, o = t * per;
      for (let q = 0; q < per; q++) buf[o + q] = alpha * src[a + q] + (1 - alpha) * src[b + q];
    }
    const ent = tf.tidy(() => {
      const x = tf.tensor4d(buf.subarray(0, m * per), [m, h, w, c]);
      const logp = tf.logSoftmax(clf.logits(x));
      return tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1));
    });
    let values: Float32Array;
    try {
      values = await ent.data() as Float32Array;
    } finally {
      ent.dispose();
    }
    for (let t = 0; t < m; t++) entropySum[Math.floor((start + t) / blends)] += values[t];
  }
  const scores = Float32Array.from(entropySum, (s) => -s / blends);
  const flagged = flagByRule(scores, labels, rule);

  // The class whose flagged images are the largest share of it is the likeliest target.
  let suspectedTarget: number | undefined;
  let best = 0;
  for (const k of flagged.perClass) {
    const share = k.n > 0 ? k.flagged / k.n : 0;
    if (share > best) {
      best = share;
      suspectedTarget = k.class;
    }
  }
  return {
    scores,
    flags: flagged.flags,
    threshold: flagged.threshold,
    suspectedTarget,
    diagnostics: { blends, alpha, cuts: flagged.perClass },
  };
};

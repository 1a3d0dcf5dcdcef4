/**
 * Spectral signatures (Tran, Li & Madry, "Spectral Signatures in Backdoor Attacks", NeurIPS 2018).
 *
 * Within each label class, poisoned images shift the learned representation along a common
 * direction, which then dominates the class's covariance. Per class: centre the features, take
 * the top right singular vector v of the centred matrix, and score each image by its squared
 * projection `((f − mean)·v)²`. The paper removes the top 1.5·ε of every class, ε the expected
 * poison rate.
 *
 * Scores are left in the layer's units (not rescaled per class), as in the paper: in an
 * all-to-one attack the target class's top direction carries far more variance than any clean
 * class's, which ranks its images first. The squared projection is symmetric about the class
 * mean, so once poison is about half of a class (the all-to-one case DESIGN.md measures) the
 * clean half scores as high as the poison: AUROC falls towards 0.7-0.8 there. This method is
 * kept faithful for comparison; the cluster and robust-statistics detectors handle that case.
 *
 * @module
 */
import type { Preprocess } from "../model/classifier.ts";
import { gatherRows, pca } from "./linalg.ts";
import { byClass, flagByRule, type FlagRule, MIN_CLASS_FOR_DISTRIBUTION } from "./thresholds.ts";
import { detectorFeatures } from "./features.ts";
import type { Detector, DetectResult } from "./types.ts";

export interface SpectralOptions {
  /** Layer to read. Default: the input of the last Dense layer. */
  layer?: string;
  /** The normalisation the classifier applies (see `featuresOf`). Default none. */
  preprocess?: Preprocess;
  /** Expected poison rate ε in (0, 1), read by the paper's rule (top 1.5·ε of each class). Default 0.1. */
  epsilon?: number;
  /**
   * How scores become flags. Default `{ rule: "fpr", fpr: 0.05 }`: a cut from the clean bulk of
   * each class, so a clean class flags under 5%. The paper's `{ rule: "top_fraction", fraction:
   * 1.5·epsilon }` flags 1.5·ε of every class even when nothing is poisoned; ask for it.
   */
  flagRule?: FlagRule;
  /** Seeds the iterative eigensolver (used above 160 dimensions). Default 0. */
  seed?: number;
}

/** Per-class summary of the spectrum. */
export interface SpectralClass {
  class: number;
  n: number;
  /** Variance along the top direction. */
  lambda1: number;
  /** Variance along the second direction. */
  lambda2: number;
  /** lambda1 / lambda2: how much one direction dominates. */
  dominance: number;
}

/** Classes smaller than this get score 0: their covariance is too noisy to have a signature. */
const MIN_CLASS = 3;

/**
 * Spectral-signature scores of `[n, dim]` features grouped by `labels`. The suspected target is
 * the class (with at least 8 images) whose top direction carries the most variance (largest
 * `lambda1`), the comparison the unscaled scores make when ranked across classes: a planted
 * shift adds the squared distance between poison and clean to that variance.
 */
export function spectralScores(
  features: Float32Array,
  dim: number,
  labels: ArrayLike<number>,
  seed = 0,
): { scores: Float32Array; classes: SpectralClass[]; suspectedTarget?: number } {
  const scores = new Float32Array(labels.length);
  const classes: SpectralClass[] = [];
  for (const [c, idx] of byClass(labels)) {
    if (idx.length < MIN_CLASS) {
      classes.push({ class: c, n: idx.length, lambda1: 0, lambda2: 0, dominance: 0 });
      continue;
    }
    const x = gatherRows(features, dim, idx);
    const p = pca(x, idx.length, dim, 2, { seed });
    for (let r = 0; r < idx.length; r++) scores[idx[r]] = p.projected[r * p.k] ** 2;
    const lambda1 = p.variances[0], lambda2 = p.k > 1 ? p.variances[1] : 0;
    classes.push({
      class: c,
      n: idx.length,
      lambda1,
      lambda2,
      // Finite in JSON: a zero second eigenvalue counts as the smallest positive float32.
      dominance: lambda1 > 0 ? lambda1 / Math.max(lambda2, 1e-38) : 0,
    });
  }
  let suspectedTarget: number | undefined;
  let best = -Infinity;
  for (const k of classes) {
    if (k.n >= MIN_CLASS_FOR_DISTRIBUTION && k.lambda1 > best) {
      best = k.lambda1;
      suspectedTarget = k.class;
    }
  }
  return { scores, classes, suspectedTarget };
}

/**
 * Spectral-signature detection over `images` (NHWC in [0,1]) with their (possibly poisoned)
 * `labels`. Score: squared projection on the class's top singular vector (higher = more
 * suspicious). Default flags: the fpr rule at 5% (see {@link SpectralOptions.flagRule}); the
 * paper's top 1.5·ε of each class on request.
 */
export const spectral: Detector<SpectralOptions> = async (clf, images, labels, options, ctx) => {
  const rule = options.flagRule ?? { rule: "fpr", fpr: 0.05 };
  const f = await detectorFeatures(clf, images, options, ctx);
  const { scores, classes, suspectedTarget } = spectralScores(
    f.data,
    f.dim,
    labels,
    options.seed ?? 0,
  );
  const flagged = flagByRule(scores, labels, rule);
  const result: DetectResult = {
    scores,
    flags: flagged.flags,
    threshold: flagged.threshold,
    suspectedTarget,
    diagnostics: { layer: f.layer, dim: f.dim, classes, cuts: flagged.perClass },
  };
  return result;
};

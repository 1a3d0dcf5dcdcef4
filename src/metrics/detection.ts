/**
 * How well a detector's scores and flags match the ground truth, when the caller knows it (the lab,
 * benchmarks, a client evaluating the service): precision, recall, F1 of the flags, AUROC of the
 * scores, and ROC curve points for reports. Scores follow the detector convention: higher = more
 * suspicious; ground truth is 1 for a poisoned image.
 *
 * They sit with the other metrics rather than in `detect/` because detectors, the purification
 * round and benchmarks all score against them.
 *
 * @module
 */

export interface DetectionMetrics {
  /** Flagged and poisoned. */
  tp: number;
  /** Flagged but clean. */
  fp: number;
  /** Poisoned but not flagged. */
  fn: number;
  /** Clean and not flagged. */
  tn: number;
  /** tp / (tp + fp); 0 when nothing is flagged. */
  precision: number;
  /** tp / (tp + fn); 0 when nothing is poisoned. */
  recall: number;
  /** Harmonic mean of precision and recall; 0 when both are 0. */
  f1: number;
  /** fp / (fp + tn): the share of clean images flagged; 0 when every image is poisoned. */
  fpr: number;
  /** Area under the ROC curve of the scores; null when only one class is present. */
  auroc: number | null;
  /**
   * The best recall of any score threshold whose precision is at least 0.9 (0 when none is);
   * null when nothing is poisoned. Says what the scores can do, whatever rule flagged.
   */
  recall_at_precision_90: number | null;
}

/** Confusion counts and the rates derived from them (zero-division cases give 0, as sklearn). */
export function flagMetrics(
  flags: ArrayLike<number>,
  truth: ArrayLike<number>,
): Omit<DetectionMetrics, "auroc" | "recall_at_precision_90"> {
  checkLengths(flags.length, truth.length);
  let tp = 0, fp = 0, fn = 0, tn = 0;
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i] !== 0, t = truth[i] !== 0;
    if (f && t) tp++;
    else if (f) fp++;
    else if (t) fn++;
    else tn++;
  }
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  const fpr = fp + tn > 0 ? fp / (fp + tn) : 0;
  return { tp, fp, fn, tn, precision, recall, f1, fpr };
}

/**
 * AUROC as the Mann-Whitney statistic: the probability that a random poisoned image scores higher
 * than a random clean one, ties counting one half (midranks). O(n log n). Null when the truth holds
 * only one class, where the area is undefined.
 */
export function auroc(scores: ArrayLike<number>, truth: ArrayLike<number>): number | null {
  checkLengths(scores.length, truth.length);
  const n = scores.length;
  const order = [...Array(n).keys()].sort((a, b) => scores[a] - scores[b]);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    // Ranks are 1-based; a run of ties shares the mean of its ranks.
    const midrank = (i + j + 2) / 2;
    for (let t = i; t <= j; t++) {
      if (truth[order[t]] !== 0) {
        pos++;
        rankSum += midrank;
      }
    }
    i = j + 1;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return null;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Everything at once: flag metrics plus AUROC of the scores. */
export function detectionMetrics(
  scores: ArrayLike<number>,
  flags: ArrayLike<number>,
  truth: ArrayLike<number>,
): DetectionMetrics {
  return {
    ...flagMetrics(flags, truth),
    auroc: auroc(scores, truth),
    recall_at_precision_90: recallAtPrecision(scores, truth, 0.9),
  };
}

/**
 * The highest recall over score thresholds (flag every image scoring at least t; tied scores
 * go together) whose precision is at least `minPrecision`; 0 when no threshold reaches it, null
 * when nothing is poisoned.
 */
export function recallAtPrecision(
  scores: ArrayLike<number>,
  truth: ArrayLike<number>,
  minPrecision: number,
): number | null {
  checkLengths(scores.length, truth.length);
  const n = scores.length;
  let pos = 0;
  for (let i = 0; i < n; i++) if (truth[i] !== 0) pos++;
  if (pos === 0) return null;
  const order = [...Array(n).keys()].sort((a, b) => scores[b] - scores[a]);
  let tp = 0, best = 0;
  for (let i = 0; i < n;) {
    const s = scores[order[i]];
    while (i < n && scores[order[i]] === s) {
      if (truth[order[i]] !== 0) tp++;
      i++;
    }
    if (tp / i >= minPrecision) best = Math.max(best, tp / pos);
  }
  return best;
}

/** One operating point: flag every image scoring at least `threshold`. */
export interface RocPoint {
  threshold: number;
  fpr: number;
  tpr: number;
}

/**
 * ROC curve points from (0, 0) to (1, 1), one per distinct score (ties move both rates at once,
 * so the trapezoid area equals {@link auroc}). With `maxPoints`, intermediate points are thinned
 * evenly for reports, keeping both ends. Empty when only one class is present.
 */
export function rocCurve(
  scores: ArrayLike<number>,
  truth: ArrayLike<number>,
  maxPoints = Infinity,
): RocPoint[] {
  checkLengths(scores.length, truth.length);
  const n = scores.length;
  let pos = 0;
  for (let i = 0; i < n; i++) if (truth[i] !== 0) pos++;
  const neg = n - pos;
  if (pos === 0 || neg === 0) return [];
  const order = [...Array(n).keys()].sort((a, b) => scores[b] - scores[a]);
  // JSON has no Infinity: "nothing flagged" is a cut above every score.
  const points: RocPoint[] = [{ threshold: scores[order[0]] + 1, fpr: 0, tpr: 0 }];
  let tp = 0, fp = 0;
  for (let i = 0; i < n;) {
    const s = scores[order[i]];
    while (i < n && scores[order[i]] === s) {
      if (truth[order[i]] !== 0) tp++;
      else fp++;
      i++;
    }
    points.push({ threshold: s, fpr: fp / neg, tpr: tp / pos });
  }
  if (points.length <= maxPoints || maxPoints < 2) return points;
  const out: RocPoint[] = [];
  for (let k = 0; k < maxPoints; k++) {
    out.push(points[Math.round((k * (points.length - 1)) / (maxPoints - 1))]);
  }
  return out;
}

function checkLengths(a: number, b: number): void {
  if (a !== b) throw new RangeError(`scores/flags have ${a} entries but ground truth has ${b}`);
}

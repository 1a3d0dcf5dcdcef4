/**
 * Clean accuracy, overall and per class, of a classifier on labelled images (`[N, H, W, C]` in
 * [0,1], int32 labels `[N]`).
 *
 * @module
 */
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";
import { logitsOf } from "../model/predict.ts";
import { checkLabels } from "../io/label_checks.ts";

export interface ClassFigure {
  class: number;
  /** Images of this class (by label). */
  n: number;
  /** Share of them meeting the metric; null when `n` is 0. */
  value: number | null;
}

export interface AccuracyReport {
  /** Share of images whose predicted class equals the label; null for an empty set. */
  accuracy: number | null;
  correct: number;
  total: number;
  per_class: ClassFigure[];
}

/** Predicted classes (argmax of the logits; lowest index on ties), `batchSize` at a time. */
export async function predictClasses(
  clf: Classifier,
  images: ImageBatch,
  opts: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<Int32Array> {
  const k = clf.numClasses;
  const z = await logitsOf(clf, images, opts.batchSize ?? 256, opts.signal);
  const n = images.shape[0];
  const pred = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (z[i * k + j] > z[i * k + best]) best = j;
    pred[i] = best;
  }
  return pred;
}

/**
 * Accuracy of `ok[i]` (1 when image i meets the metric) overall and per label class; classes run
 * over 0..k−1 so reports from different sets line up.
 */
export function figures(ok: ArrayLike<number>, labels: Int32Array, k: number): AccuracyReport {
  const n = new Array<number>(k).fill(0);
  const hit = new Array<number>(k).fill(0);
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    n[labels[i]]++;
    if (ok[i]) {
      hit[labels[i]]++;
      correct++;
    }
  }
  return {
    accuracy: labels.length ? correct / labels.length : null,
    correct,
    total: labels.length,
    per_class: n.map((c, j) => ({ class: j, n: c, value: c ? hit[j] / c : null })),
  };
}

/**
 * Clean accuracy: the share of images whose predicted class equals the label.
 *
 * @throws {ShapeMismatchError} labels and images differ in count.
 * @throws {UnprocessableError} a label outside 0..K−1.
 */
export async function accuracy(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  opts: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<AccuracyReport> {
  checkLabels(images, labels, clf.numClasses);
  const pred = await predictClasses(clf, images, opts);
  return figures(pred.map((p, i) => (p === labels[i] ? 1 : 0)), labels, clf.numClasses);
}

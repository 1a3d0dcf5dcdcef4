import assert from "node:assert/strict";
import {
  auroc,
  detectionMetrics,
  flagMetrics,
  recallAtPrecision,
  rocCurve,
} from "../../src/metrics/detection.ts";

Deno.test("auroc() matches a hand-computed value", () => {
  // Pairs (pos, neg): (0.35, 0.1) ✓, (0.35, 0.4) ✗, (0.8, 0.1) ✓, (0.8, 0.4) ✓ → 3/4.
  assert.equal(auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
});

Deno.test("auroc() counts ties as one half", () => {
  // The positive at 0.5 ties both negatives (½ + ½), the one at 0.9 beats both (1 + 1): 3 of 4.
  assert.equal(auroc([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1]), 0.75);
  assert.equal(auroc([1, 1, 1, 1], [0, 1, 0, 1]), 0.5);
});

Deno.test("auroc() is null when the truth holds one class", () => {
  assert.equal(auroc([1, 2, 3], [0, 0, 0]), null);
  assert.equal(auroc([1, 2, 3], [1, 1, 1]), null);
});

Deno.test("flagMetrics() computes precision, recall, F1 and FPR by hand", () => {
  const m = flagMetrics([1, 0, 1, 1, 0], [0, 0, 1, 1, 1]);
  assert.deepEqual([m.tp, m.fp, m.fn, m.tn], [2, 1, 1, 1]);
  assert.equal(m.precision, 2 / 3);
  assert.equal(m.recall, 2 / 3);
  assert.ok(Math.abs(m.f1 - 2 / 3) < 1e-12);
  assert.equal(m.fpr, 0.5);
});

Deno.test("flagMetrics() gives 0, not NaN, when nothing is flagged or poisoned", () => {
  const m = flagMetrics([0, 0], [0, 0]);
  assert.deepEqual([m.precision, m.recall, m.f1, m.fpr], [0, 0, 0, 0]);
});

Deno.test("rocCurve() runs from (0,0) to (1,1) and its trapezoid area equals auroc()", () => {
  const scores = [0.5, 0.5, 0.5, 0.9, 0.2, 0.7, 0.7, 0.1];
  const truth = [0, 1, 0, 1, 0, 1, 0, 0];
  const pts = rocCurve(scores, truth);
  assert.deepEqual([pts[0].fpr, pts[0].tpr], [0, 0]);
  assert.deepEqual([pts.at(-1)!.fpr, pts.at(-1)!.tpr], [1, 1]);
  let area = 0;
  for (let i = 1; i < pts.length; i++) {
    area += (pts[i].fpr - pts[i - 1].fpr) * (pts[i].tpr + pts[i - 1].tpr) / 2;
  }
  assert.ok(Math.abs(area - auroc(scores, truth)!) < 1e-12);
  assert.equal(rocCurve(scores, truth, 3).length, 3);
});

Deno.test("detectionMetrics() refuses arrays of different lengths", () => {
  assert.throws(() => detectionMetrics([1, 2], [1, 0], [1]), RangeError);
});

Deno.test("recallAtPrecision() finds the best recall whose precision clears the bar, ties together", () => {
  // Ranked: P P N P N P → prefixes of precision 1, 1, 2/3, 3/4, 3/5, 2/3.
  const scores = [6, 5, 4, 3, 2, 1];
  const truth = [1, 1, 0, 1, 0, 1];
  assert.equal(recallAtPrecision(scores, truth, 0.9), 2 / 4);
  assert.equal(recallAtPrecision(scores, truth, 0.75), 3 / 4);
  assert.equal(recallAtPrecision(scores, truth, 0.7), 3 / 4);
  assert.equal(recallAtPrecision(scores, truth, 0.65), 1);
  assert.equal(recallAtPrecision(scores, truth, 0.5), 1);
  // A tie of one poisoned and one clean image at the top: precision 1/2 until more come.
  assert.equal(recallAtPrecision([1, 1, 0], [1, 0, 1], 0.9), 0);
  assert.equal(recallAtPrecision([1, 2], [0, 0], 0.9), null);
  assert.throws(() => recallAtPrecision([1], [0, 1], 0.9), RangeError);
});

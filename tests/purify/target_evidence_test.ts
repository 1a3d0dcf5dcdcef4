import assert from "node:assert/strict";
import {
  anomalyIndex,
  decideSuspects,
  labelExcess,
  median,
  type RawEvidence,
  type Thresholds,
} from "../../src/purify/target_evidence.ts";

const th: Thresholds = { patch: 3, additive: 5, landing: 5, label_excess: 0.2, max_suspects: 3 };
const k = 10;
const flat = (v: number) => new Array<number>(k).fill(v);
/** Ten classes of 200 images, nothing standing out, every signal measured. */
function quiet(): RawEvidence {
  return {
    counts: flat(200),
    labelExcess: flat(0),
    landing: [0.05, 0.04, 0.08, 0.05, 0.1, 0.03, 0.12, 0.04, 0.06, 0.02],
    patchMask: flat(0.012),
    patchSuccess: [0.1, 0.02, 0.05, 0.04, 0.3, 0.2, 0.35, 0.05, 0.38, 0.04],
    additiveSuccess: [0.07, 0.01, 0.05, 0.04, 0.07, 0.07, 0.3, 0.08, 0.22, 0.04],
    untargeted: null,
  };
}

Deno.test("anomalyIndex() is a robust z-score with a floor on the spread", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  const z = anomalyIndex([0, 0, 0, 0, 1], 1, 0.1);
  assert.deepEqual(z.slice(0, 4), [0, 0, 0, 0]);
  assert.equal(z[4], 10, "MAD 0 is floored at 0.1");
  const low = anomalyIndex([5, 6, 7, 1], -1, 0.01);
  assert.ok(low[3] > 2 && low[0] < 1, "sign −1 makes small values anomalous");
});

Deno.test("labelExcess() measures each count against the median count", () => {
  const labels = Int32Array.from([0, 0, 0, 0, 1, 1, 2, 2]);
  const r = labelExcess(labels, 3);
  assert.deepEqual(r.counts, [4, 2, 2]);
  assert.deepEqual(r.excess, [1, 0, 0]);
});

Deno.test("decideSuspects() names nobody when no signal stands out", () => {
  const d = decideSuspects(quiet(), th);
  assert.deepEqual(d.classes, []);
  assert.equal(d.primary, null);
  assert.equal(d.all_to_all, false);
  assert.equal(d.per_class.length, k);
  assert.ok(d.per_class.every((e) => e.score < 1));
});

Deno.test("decideSuspects() finds a clean-label target from the additive signal alone", () => {
  const raw = quiet();
  raw.additiveSuccess![3] = 0.66; // SIG-like: a small universal perturbation reaches class 3
  const d = decideSuspects(raw, th);
  assert.deepEqual(d.classes, [3]);
  assert.equal(d.primary, 3);
  assert.ok(d.per_class[3].additive_index! > 5);
});

Deno.test("decideSuspects() finds a patch target, and needs the trigger to work", () => {
  const raw = quiet();
  raw.patchSuccess![7] = 0.95;
  assert.deepEqual(decideSuspects(raw, th).classes, [7]);
  // An outlier that still fails most of the time is not a trigger.
  raw.patchSuccess = flat(0.01);
  raw.patchSuccess[7] = 0.35;
  assert.deepEqual(decideSuspects(raw, th).classes, []);
});

Deno.test("decideSuspects() trusts label excess only when the model names nobody else", () => {
  const raw = quiet();
  raw.counts[5] = 300;
  raw.labelExcess[5] = 0.5;
  assert.deepEqual(decideSuspects(raw, th).classes, [5], "relabelled all-to-one");
  raw.additiveSuccess![2] = 0.7; // the model points at class 2: class 5 is merely frequent
  const d = decideSuspects(raw, th);
  assert.deepEqual(d.classes, [2]);
  assert.equal(d.per_class[5].label_excess, 0.5);
});

Deno.test("decideSuspects() keeps at most max_suspects, most anomalous first", () => {
  const raw = quiet();
  raw.additiveSuccess = flat(0.05);
  [0.6, 0.9, 0.7, 0.8].forEach((v, i) => raw.additiveSuccess![i] = v);
  const d = decideSuspects(raw, { ...th, max_suspects: 2 });
  assert.deepEqual(d.classes, [1, 3]);
});

Deno.test("decideSuspects() suspects all-to-all from a working untargeted trigger with many destinations", () => {
  const raw = quiet();
  // Stamped images of class s go to s + 1: a permutation.
  const perm = Array.from({ length: k }, (_, s) => {
    const row = new Array<number>(k).fill(0);
    row[(s + 1) % k] = 30;
    row[s] = 2;
    return row;
  });
  raw.untargeted = { mask: 0.012, success: 0.9, flips: perm };
  const d = decideSuspects(raw, th);
  assert.equal(d.all_to_all, true);
  assert.deepEqual(d.classes, [...Array(k).keys()]);
  assert.equal(d.primary, null);
  assert.equal(d.untargeted!.distinct_destinations, k);
  // A universal patch that sends everything to one sink class is no all-to-all backdoor.
  const sink = Array.from({ length: k }, (_, s) => {
    const row = new Array<number>(k).fill(0);
    row[s === 8 ? 0 : 8] = 30;
    return row;
  });
  raw.untargeted = { mask: 0.012, success: 0.9, flips: sink };
  assert.equal(decideSuspects(raw, th).all_to_all, false);
});

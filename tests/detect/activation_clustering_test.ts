import assert from "node:assert/strict";
import {
  activationClustering,
  clusterScores,
  labelMargins,
} from "../../src/detect/activation_clustering.ts";
import { flagMetrics } from "../../src/metrics/detection.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { asImages, identityClassifier, plantedFeatures } from "./_fixtures.ts";

const D = 16;
const SHIFT = Array.from({ length: D }, (_, j) => (j < 4 ? 0.15 : 0));

/** Margins as a backdoored model gives them: planted images get their label with a wide margin. */
function margins(isPoison: Uint8Array, seed = 1) {
  return Float64Array.from(isPoison, (p, i) => (p ? 8 : 1.5) + Math.sin(i * 12.9898 + seed));
}

Deno.test("clusterScores() flags a planted minority cluster (the paper's case)", () => {
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 4,
    perClass: 150,
    poisoned: 30,
    shift: SHIFT,
  });
  const res = clusterScores(features, D, labels, margins(isPoison));
  const m = flagMetrics(res.inSuspect, isPoison);
  assert.equal(res.suspectedTarget, 0);
  assert.ok(m.precision > 0.95 && m.recall > 0.95, JSON.stringify(m));
  assert.deepEqual(res.classes.map((k) => k.poisoned), [true, false, false, false]);
});

Deno.test("clusterScores() flags the planted group when it is the LARGER cluster", () => {
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 4,
    perClass: 150,
    poisoned: 95,
    shift: SHIFT,
  });
  const res = clusterScores(features, D, labels, margins(isPoison));
  const m = flagMetrics(res.inSuspect, isPoison);
  assert.ok(m.precision > 0.95 && m.recall > 0.95, JSON.stringify(m));
  // The paper's rule alone (no margins) would call the clean 55 images poisoned.
  const paper = clusterScores(features, D, labels);
  assert.ok(flagMetrics(paper.inSuspect, isPoison).recall < 0.1);
});

Deno.test("clusterScores() flags nothing on clean classes", () => {
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 4,
    perClass: 150,
    poisoned: 0,
    shift: SHIFT,
  });
  const res = clusterScores(features, D, labels, margins(isPoison));
  assert.equal(res.inSuspect.reduce((a, b) => a + b, 0), 0);
});

Deno.test("labelMargins() is the label logit minus the best other logit", () => {
  const m = labelMargins(new Float32Array([1, 3, 2, 5, 0, 1]), 3, [1, 0]);
  assert.deepEqual([...m], [1, 4]);
});

Deno.test("activationClustering() reads margins from the model and leaves no tensor behind", async () => {
  await setupBackend();
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 4,
    perClass: 100,
    poisoned: 60,
    shift: SHIFT,
  });
  // Class c reads its own 4 coordinates (weight 5; class 0: 20), so the planted shift on class
  // 0's coordinates widens its margin, as a backdoor does for triggered images.
  const out = new Float32Array(D * 4);
  for (let c = 0; c < 4; c++) for (let j = 0; j < 4; j++) out[(c * 4 + j) * 4 + c] = 5;
  for (let j = 0; j < 4; j++) out[j * 4 + 0] = 20;
  const clf = identityClassifier(D, 4, out);
  try {
    const res = await assertNoLeak(() =>
      activationClustering(clf, asImages(features, D), labels, { seed: 3 }, { batchSize: 50 })
    );
    const m = flagMetrics(res.flags, isPoison);
    assert.ok(m.precision > 0.9 && m.recall > 0.9, JSON.stringify(m));
    assert.equal(res.threshold.rule, "cluster");
    assert.equal(res.suspectedTarget, 0);
  } finally {
    clf.dispose();
  }
});

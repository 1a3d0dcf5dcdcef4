import assert from "node:assert/strict";
import { spectral, spectralScores } from "../../src/detect/spectral.ts";
import { auroc } from "../../src/metrics/detection.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { asImages, identityClassifier, plantedFeatures } from "./_fixtures.ts";

const D = 16;
// A 5σ shift along one direction spread over four coordinates.
const SHIFT = Array.from({ length: D }, (_, j) => (j < 4 ? 0.1 : 0));

Deno.test("spectralScores() finds a planted direction in 10% of one class (AUROC > 0.95)", () => {
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 3,
    perClass: 200,
    poisoned: 20,
    shift: SHIFT,
  });
  const { scores, suspectedTarget } = spectralScores(features, D, labels);
  const idx = [...labels.keys()].filter((i) => labels[i] === 0);
  const a = auroc(idx.map((i) => scores[i]), idx.map((i) => isPoison[i]))!;
  assert.ok(a > 0.95, `AUROC on the poisoned class ${a}`);
  assert.equal(suspectedTarget, 0);
});

Deno.test("spectral() with the paper's rule flags the top 1.5·ε of each class and leaves no tensor behind", async () => {
  await setupBackend();
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 3,
    perClass: 200,
    poisoned: 20,
    shift: SHIFT,
  });
  const clf = identityClassifier(D, 3, new Float32Array(D * 3));
  try {
    const res = await assertNoLeak(() =>
      spectral(clf, asImages(features, D), labels, {
        flagRule: { rule: "top_fraction", fraction: 0.15 },
      }, { batchSize: 64 })
    );
    assert.equal(res.threshold.rule, "top_fraction");
    // round(0.15 · 200) = 30 per class.
    assert.equal(res.flags.reduce((a, b) => a + b, 0), 90);
    let caught = 0;
    for (let i = 0; i < 20; i++) caught += res.flags[i];
    assert.ok(caught >= 19, `caught ${caught} of 20 planted images`);
    assert.ok(isPoison.slice(0, 20).every((v) => v === 1));
    assert.equal(res.diagnostics?.layer, "feat");
  } finally {
    clf.dispose();
  }
});

Deno.test("spectral() by default flags at most 5% of clean classes and still catches planted images", async () => {
  await setupBackend();
  const clean = plantedFeatures({ d: D, k: 3, perClass: 200, poisoned: 0, shift: SHIFT });
  const dirty = plantedFeatures({ d: D, k: 3, perClass: 200, poisoned: 20, shift: SHIFT });
  const clf = identityClassifier(D, 3, new Float32Array(D * 3));
  try {
    const a = await spectral(clf, asImages(clean.features, D), clean.labels, {}, { batchSize: 64 });
    assert.equal(a.threshold.rule, "fpr");
    const share = a.flags.reduce((s, v) => s + v, 0) / a.flags.length;
    assert.ok(share <= 0.05, `flagged ${share} of clean features`);
    const b = await spectral(clf, asImages(dirty.features, D), dirty.labels, {}, { batchSize: 64 });
    let caught = 0, falsePos = 0;
    for (let i = 0; i < dirty.isPoison.length; i++) {
      caught += dirty.isPoison[i] & b.flags[i];
      falsePos += (1 - dirty.isPoison[i]) & b.flags[i];
    }
    // A cut from the clean bulk trades recall for false positives: half the planted images here,
    // where the paper's top 1.5·ε rule catches nearly all and flags 70 clean ones.
    assert.ok(caught >= 10, `caught ${caught} of 20 planted images`);
    assert.ok(falsePos <= 0.05 * 580, `flagged ${falsePos} clean images`);
  } finally {
    clf.dispose();
  }
});

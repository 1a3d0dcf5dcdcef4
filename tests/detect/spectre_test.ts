import assert from "node:assert/strict";
import { auroc } from "../../src/metrics/detection.ts";
import { spectre, spectreScores } from "../../src/detect/spectre.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { asImages, identityClassifier, plantedFeatures } from "./_fixtures.ts";

const D = 16;
const SHIFT = Array.from({ length: D }, (_, j) => (j < 4 ? 0.1 : 0));

Deno.test("spectreScores() ranks a planted minority above the clean images of its class", () => {
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 3,
    perClass: 200,
    poisoned: 30,
    shift: SHIFT,
  });
  const { scores, suspectedTarget } = spectreScores(features, D, labels);
  const idx = [...labels.keys()].filter((i) => labels[i] === 0);
  const a = auroc(idx.map((i) => scores[i]), idx.map((i) => isPoison[i]))!;
  assert.ok(a > 0.95, `AUROC on the poisoned class ${a}`);
  assert.equal(suspectedTarget, 0);
});

Deno.test("spectreScores() is reproducible for a seed", () => {
  const { features, labels } = plantedFeatures({
    d: D,
    k: 2,
    perClass: 60,
    poisoned: 10,
    shift: SHIFT,
  });
  const a = spectreScores(features, D, labels, { seed: 4 }).scores;
  const b = spectreScores(features, D, labels, { seed: 4 }).scores;
  assert.deepEqual(a, b);
});

Deno.test("spectre() flags with the fpr rule and leaves no tensor behind", async () => {
  await setupBackend();
  const { features, labels, isPoison } = plantedFeatures({
    d: D,
    k: 4,
    perClass: 150,
    poisoned: 25,
    shift: SHIFT,
  });
  const clf = identityClassifier(D, 4, new Float32Array(D * 4));
  try {
    const res = await assertNoLeak(() =>
      spectre(clf, asImages(features, D), labels, {}, { batchSize: 64 })
    );
    assert.equal(res.threshold.rule, "fpr");
    let caught = 0;
    for (let i = 0; i < 25; i++) caught += res.flags[i];
    assert.ok(caught >= 22, `caught ${caught} of 25`);
    const clean = res.flags.reduce((a, f, i) => a + (isPoison[i] ? 0 : f), 0);
    assert.ok(clean / (600 - 25) <= 0.05, `false-positive rate ${clean / 575}`);
    assert.equal(res.suspectedTarget, 0);
  } finally {
    clf.dispose();
  }
});

import assert from "node:assert/strict";
import { z } from "zod";
import { CostExceededError, ShapeMismatchError, UnprocessableError } from "../../src/errors.ts";
import { DetectParamsSchema } from "../../src/detect/options.ts";
import { estimateDetectCost, flagRuleOf, runDetect } from "../../src/detect/run.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { asImages, identityClassifier, plantedFeatures } from "./_fixtures.ts";

const D = 8;
const SHIFT = Array.from({ length: D }, (_, j) => (j < 2 ? 0.15 : 0));
const BIG = Number.MAX_SAFE_INTEGER;

function setup(perClass = 60, poisoned = 12) {
  const data = plantedFeatures({ d: D, k: 3, perClass, poisoned, shift: SHIFT });
  return {
    ...data,
    images: asImages(data.features, D),
    clf: identityClassifier(D, 3, new Float32Array(D * 3)),
  };
}

Deno.test("the detect params schema fills defaults and rejects unknown keys", () => {
  const p = DetectParamsSchema.parse({ method: "spectral" });
  assert.deepEqual(
    { rule: p.method === "spectral" && p.flag_rule, fpr: p.method === "spectral" && p.fpr },
    { rule: "auto", fpr: 0.05 },
  );
  const pud = DetectParamsSchema.parse({ method: "pud" });
  assert.ok(pud.method === "pud");
  assert.equal(pud.pgd_eps, 6 / 255);
  assert.deepEqual([pud.pgd_steps, pud.finetune_epochs, pud.max_steps], [7, 2, 200]);
  assert.equal(pud.flag_fraction, undefined);
  assert.throws(() => DetectParamsSchema.parse({ method: "spectral", fpr_typo: 1 }));
  assert.throws(() => DetectParamsSchema.parse({ method: "pud", layer: "x" }));
  assert.throws(() => DetectParamsSchema.parse({ method: "nope" }));
  assert.throws(() => DetectParamsSchema.parse({ method: "strip", fpr: 1.5 }));
});

Deno.test("the detect params schema converts to JSON Schema with a description on every field", () => {
  const schema = z.toJSONSchema(DetectParamsSchema, { io: "input" }) as {
    oneOf?: { properties: Record<string, { description?: string }> }[];
    anyOf?: { properties: Record<string, { description?: string }> }[];
  };
  const variants = schema.oneOf ?? schema.anyOf ?? [];
  assert.equal(variants.length, 5);
  for (const v of variants) {
    for (const [name, prop] of Object.entries(v.properties)) {
      if (name === "preprocess") continue;
      assert.ok(prop.description, `field ${name} has no description`);
    }
  }
});

Deno.test("flagRuleOf() maps the request's flag options onto a rule", () => {
  const base = { fpr: 0.02, mad_cut: 4, epsilon: 0.1 };
  assert.equal(flagRuleOf({ ...base, flag_rule: "auto" }), undefined);
  assert.deepEqual(flagRuleOf({ ...base, flag_rule: "fpr" }), { rule: "fpr", fpr: 0.02 });
  assert.deepEqual(flagRuleOf({ ...base, flag_rule: "mad" }), { rule: "mad", cut: 4 });
  const top = flagRuleOf({ ...base, flag_rule: "top_fraction" });
  assert.equal(top?.rule, "top_fraction");
  assert.ok(top?.rule === "top_fraction" && Math.abs(top.fraction - 0.15) < 1e-12);
});

Deno.test("runDetect() reports per-class flags and, with ground truth, precision/recall/F1/AUROC", async () => {
  await setupBackend();
  const { images, labels, isPoison, clf } = setup();
  try {
    for (const method of ["spectral", "activation-clustering", "strip", "spectre"]) {
      const params = DetectParamsSchema.parse({ method, batch_size: 32 });
      const { result, report } = await assertNoLeak(() =>
        runDetect(clf, images, labels, params, { maxCost: BIG, isPoison })
      );
      assert.equal(result.scores.length, 180, method);
      assert.equal(report.n, 180);
      assert.deepEqual(report.per_class.map((k) => k.n), [60, 60, 60]);
      assert.equal(report.per_class.reduce((a, k) => a + k.flagged, 0), report.flagged);
      assert.ok(report.metrics !== undefined);
      assert.equal(report.metrics.tp + report.metrics.fn, 12);
      assert.ok(report.metrics.roc.length > 0 && report.metrics.roc.length <= 21);
      assert.equal(report.cost, estimateDetectCost(params, 180));
    }
    const spectral = await runDetect(
      clf,
      images,
      labels,
      DetectParamsSchema.parse({ method: "spectral" }),
      { maxCost: BIG, isPoison },
    );
    assert.ok(spectral.report.metrics!.auroc! > 0.8);
  } finally {
    clf.dispose();
  }
});

Deno.test("runDetect() refuses mismatched shapes, labels and ground truth", async () => {
  await setupBackend();
  const { images, labels, clf } = setup();
  const params = DetectParamsSchema.parse({ method: "spectral" });
  try {
    const wrongShape = {
      shape: [180, 2, 1, 4] as [number, number, number, number],
      data: images.data,
    };
    await assert.rejects(
      () => runDetect(clf, wrongShape, labels, params, { maxCost: BIG }),
      ShapeMismatchError,
    );
    await assert.rejects(
      () => runDetect(clf, images, labels.slice(1), params, { maxCost: BIG }),
      ShapeMismatchError,
    );
    const badLabel = labels.slice();
    badLabel[5] = 3;
    await assert.rejects(
      () => runDetect(clf, images, badLabel, params, { maxCost: BIG }),
      (e: unknown) => e instanceof UnprocessableError && /label 3 of image 5/.test(e.message),
    );
    await assert.rejects(
      () => runDetect(clf, images, labels, params, { maxCost: BIG, isPoison: new Uint8Array(3) }),
      ShapeMismatchError,
    );
    await assert.rejects(
      () =>
        runDetect(clf, images, labels, params, {
          maxCost: BIG,
          isPoison: new Uint8Array(180).fill(2),
        }),
      UnprocessableError,
    );
    const bright = { shape: images.shape, data: images.data.map((v, i) => (i === 7 ? 1.5 : v)) };
    await assert.rejects(
      () => runDetect(clf, bright, labels, params, { maxCost: BIG }),
      UnprocessableError,
    );
  } finally {
    clf.dispose();
  }
});

Deno.test("runDetect() refuses fewer images than the method needs, with a 422", async () => {
  await setupBackend();
  const { clf } = setup();
  try {
    // 12 images over 3 labels: no label has the 10 a feature-space method needs.
    const few = plantedFeatures({ d: D, k: 3, perClass: 4, poisoned: 0, shift: SHIFT });
    await assert.rejects(
      () =>
        runDetect(
          clf,
          asImages(few.features, D),
          few.labels,
          DetectParamsSchema.parse({
            method: "activation-clustering",
          }),
          { maxCost: BIG },
        ),
      (e: unknown) =>
        e instanceof UnprocessableError && e.status === 422 && /at least 10/.test(e.message),
    );
    const one = plantedFeatures({ d: D, k: 1, perClass: 1, poisoned: 0, shift: SHIFT });
    await assert.rejects(
      () =>
        runDetect(
          clf,
          asImages(one.features, D),
          one.labels,
          DetectParamsSchema.parse({
            method: "strip",
          }),
          { maxCost: BIG },
        ),
      (e: unknown) => e instanceof UnprocessableError && /at least 2 images/.test(e.message),
    );
  } finally {
    clf.dispose();
  }
});

Deno.test("runDetect() refuses an over-budget request before any tensor work", async () => {
  await setupBackend();
  const { images, labels, clf } = setup();
  try {
    const params = DetectParamsSchema.parse({ method: "strip", blends: 16 });
    assert.equal(estimateDetectCost(params, 180), 180 * 16);
    await assertNoLeak(() =>
      assert.rejects(
        () => runDetect(clf, images, labels, params, { maxCost: 1000 }),
        (e: unknown) =>
          e instanceof CostExceededError && e.status === 422 && /2880/.test(e.message),
      )
    );
    const pud = DetectParamsSchema.parse({ method: "pud" });
    assert.ok(estimateDetectCost(pud, 1000) > 1000);
  } finally {
    clf.dispose();
  }
});

Deno.test("runDetect() passes an unknown layer name on as a 422", async () => {
  await setupBackend();
  const { images, labels, clf } = setup();
  try {
    await assertNoLeak(() =>
      assert.rejects(
        () =>
          runDetect(
            clf,
            images,
            labels,
            DetectParamsSchema.parse({
              method: "spectre",
              layer: "missing",
            }),
            { maxCost: BIG },
          ),
        (e: unknown) => e instanceof UnprocessableError && /flat, feat, out/.test(e.message),
      )
    );
  } finally {
    clf.dispose();
  }
});

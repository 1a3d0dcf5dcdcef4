import assert from "node:assert/strict";
import { ShapeMismatchError, UnprocessableError } from "../../src/errors.ts";
import { accuracy } from "../../src/metrics/accuracy.ts";
import { attackSuccessRate, triggerSuccessRate } from "../../src/metrics/attack_success_rate.ts";
import { evaluate } from "../../src/metrics/evaluate.ts";
import { attackOptions, EvaluateParamsSchema } from "../../src/metrics/evaluate_options.ts";
import { robustAccuracy } from "../../src/metrics/robust_accuracy.ts";
import { parseTriggerSpec } from "../../src/triggers/trigger.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { backdooredClassifier, makeSet, TARGET, triggered } from "../purify/synthetic_backdoor.ts";

const test = makeSet(200, 0, 3);
const trig = triggered(test);
/** The synthetic trigger as a BadNets spec: a 2×2 checkerboard in the top-left corner. */
const spec = parseTriggerSpec({ type: "badnets", size: 2, position: "top-left" });

Deno.test("accuracy() reports the overall and per-class share of correct predictions", async () => {
  await setupBackend();
  const clf = await backdooredClassifier();
  try {
    const r = await assertNoLeak(() => accuracy(clf, test.images, test.labels, { batchSize: 64 }));
    assert.equal(r.total, 200);
    assert.equal(r.per_class.length, 4);
    assert.equal(r.per_class.reduce((s, c) => s + c.n, 0), 200);
    assert.ok(r.accuracy! > 0.95);
    const wrong = test.labels.map((y) => (y + 1) % 4);
    const w = await accuracy(clf, test.images, wrong);
    assert.ok(w.accuracy! < 0.05);
    assert.equal(w.correct + r.correct <= 200, true);
  } finally {
    clf.dispose();
  }
});

Deno.test("attackSuccessRate() counts triggered images of other classes sent to the target", async () => {
  const clf = await backdooredClassifier();
  try {
    const r = await attackSuccessRate(clf, trig.images, TARGET, { sourceLabels: trig.source });
    assert.equal(r.total, 150);
    assert.ok(r.asr! > 0.9, `ASR ${r.asr}`);
    assert.equal(r.per_class![TARGET].value, null);
    // The target class's own images never count.
    const all = await attackSuccessRate(clf, test.images, TARGET, { sourceLabels: test.labels });
    assert.equal(all.total, 150);
    assert.ok(all.asr! < 0.1, "clean images are not sent to the target");
  } finally {
    clf.dispose();
  }
});

Deno.test("a BadNets trigger spec gives the same ASR as the same images triggered by hand", async () => {
  const clf = await backdooredClassifier();
  try {
    const bySpec = await triggerSuccessRate(clf, test.images, test.labels, spec, TARGET);
    const byHand = await attackSuccessRate(clf, trig.images, TARGET, { sourceLabels: trig.source });
    assert.equal(bySpec.hits, byHand.hits);
    assert.equal(bySpec.total, byHand.total);
  } finally {
    clf.dispose();
  }
});

Deno.test("robustAccuracy() is at most clean accuracy and equals it for a vanishing budget", async () => {
  const clf = await backdooredClassifier();
  try {
    const clean = await accuracy(clf, test.images, test.labels);
    const strong = await assertNoLeak(() =>
      robustAccuracy(clf, test.images, test.labels, { eps: 0.3, steps: 10, batchSize: 64 })
    );
    assert.ok(strong.robust_accuracy! <= clean.accuracy!);
    assert.ok(
      strong.robust_accuracy! < 0.5,
      `eps 0.3 breaks the tiny model (${strong.robust_accuracy})`,
    );
    assert.deepEqual(strong.attack, {
      name: "pgd",
      norm: "linf",
      eps: 0.3,
      steps: 10,
      step_size: 0.075,
      restarts: 1,
    });
    const tiny = await robustAccuracy(clf, test.images, test.labels, { eps: 1e-6, steps: 2 });
    assert.equal(tiny.robust, clean.correct);
  } finally {
    clf.dispose();
  }
});

Deno.test("evaluate() composes clean accuracy, ASR and robust accuracy into one report", async () => {
  const clf = await backdooredClassifier();
  try {
    const r = await assertNoLeak(() =>
      evaluate(clf, {
        test: { images: test.images, labels: test.labels },
        backdoor: { trigger: spec, target: TARGET },
        attack: { eps: 0.05, steps: 3, maxImages: 40 },
      }, { batchSize: 64 })
    );
    assert.ok(r.clean.accuracy! > 0.95);
    assert.ok(r.backdoor!.asr! > 0.9);
    assert.equal(r.robust!.total, 40);
    assert.ok(r.time_ms > 0);
    const only = await evaluate(clf, { test: { images: test.images, labels: test.labels } });
    assert.equal(only.backdoor, undefined);
    assert.equal(only.robust, undefined);
  } finally {
    clf.dispose();
  }
});

Deno.test("metrics refuse labels that do not fit and targets that are not classes", async () => {
  const clf = await backdooredClassifier();
  try {
    await assert.rejects(accuracy(clf, test.images, test.labels.subarray(1)), ShapeMismatchError);
    const bad = test.labels.slice();
    bad[0] = 7;
    await assert.rejects(accuracy(clf, test.images, bad), UnprocessableError);
    await assert.rejects(attackSuccessRate(clf, trig.images, 4), UnprocessableError);
    await assert.rejects(attackSuccessRate(clf, trig.images, -1), UnprocessableError);
  } finally {
    clf.dispose();
  }
});

Deno.test("evaluate params parse with defaults and map to attack options", () => {
  const p = EvaluateParamsSchema.parse({ backdoor: { target: 0 }, attack: {} });
  assert.equal(p.attack!.eps, 8 / 255);
  assert.equal(p.attack!.attack === "pgd" && p.attack!.steps, 20);
  assert.deepEqual(attackOptions(p), {
    attack: "pgd",
    eps: 8 / 255,
    steps: 20,
    stepSize: undefined,
    restarts: 1,
    seed: 0,
    maxImages: undefined,
    maskingCheck: true,
  });
  const aa = EvaluateParamsSchema.parse({ attack: { attack: "autoattack", version: "fast" } });
  assert.deepEqual(attackOptions(aa), {
    attack: "autoattack",
    eps: 8 / 255,
    version: "fast",
    members: undefined,
    seed: 0,
    maxImages: undefined,
  });
  assert.equal(attackOptions(EvaluateParamsSchema.parse({})), undefined);
  assert.throws(() => EvaluateParamsSchema.parse({ attack: { eps: 2 } }));
  assert.throws(() => EvaluateParamsSchema.parse({ typo: 1 }));
  // Bad versions, members and fields of the other attack are refused, not ignored.
  for (
    const attack of [
      { attack: "autoattack", version: "slow" },
      { attack: "autoattack", members: ["fab-t"] },
      { attack: "autoattack", members: ["square", "square"] },
      { attack: "autoattack", members: [] },
      { attack: "autoattack", steps: 20 },
      { attack: "pgd", version: "fast" },
      { attack: "cw" },
      "autoattack",
    ]
  ) {
    assert.throws(() => EvaluateParamsSchema.parse({ attack }), JSON.stringify(attack));
  }
});

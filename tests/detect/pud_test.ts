import assert from "node:assert/strict";
import { pud, type PudOptions } from "../../src/detect/pud.ts";
import { auroc, flagMetrics } from "../../src/metrics/detection.ts";
import { PudParamsSchema } from "../../src/detect/options.ts";
import { parseRoundParams } from "../../src/purify/params.ts";
import { runRound } from "../../src/purify/round.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import {
  backdooredClassifier,
  cleanClassifier,
  makeSet,
  TARGET,
  tinySchedule,
  weightsOf,
} from "../purify/synthetic_backdoor.ts";

const extra = makeSet(240, 0.1, 2);
const options = (o: Record<string, unknown> = {}): PudOptions =>
  PudParamsSchema.parse({ method: "pud", pgd_eps: 0.05, pgd_steps: 3, ...o });
const ctx = { batchSize: 32 };

Deno.test("pud ranks the poisoned images of a synthetic patch backdoor first and flags them", async () => {
  await setupBackend();
  const clf = await backdooredClassifier();
  try {
    const r = await pud(clf, extra.images, extra.labels, options(), ctx);
    const a = auroc(r.scores, extra.poisoned)!;
    const f = flagMetrics(r.flags, extra.poisoned);
    if (Deno.env.get("DEBUG")) console.log(a, JSON.stringify(f), JSON.stringify(r.diagnostics));
    assert.equal(r.suspectedTarget, TARGET);
    assert.ok(a >= 0.95, `AUROC ${a}`);
    assert.ok(f.recall >= 0.8 && f.precision >= 0.7, JSON.stringify(f));
    assert.equal(r.threshold.rule, "otsu");
    assert.ok(Number.isFinite(r.threshold.value));
  } finally {
    clf.dispose();
  }
});

Deno.test("pud leaves the model's weights exactly as it found them and no tensor behind", async () => {
  const clf = await backdooredClassifier();
  try {
    const before = await weightsOf(clf);
    await assertNoLeak(() => pud(clf, extra.images, extra.labels, options(), ctx));
    assert.deepEqual(await weightsOf(clf), before);
  } finally {
    clf.dispose();
  }
});

Deno.test("pud with flag_fraction flags that share of the set, all in the suspected class", async () => {
  const clf = await backdooredClassifier();
  try {
    const r = await pud(clf, extra.images, extra.labels, options({ flag_fraction: 0.1 }), ctx);
    assert.equal(r.flags.reduce((s, v) => s + v, 0), 24);
    r.flags.forEach((f, i) => f && assert.equal(extra.labels[i], TARGET));
    assert.equal(r.threshold.rule, "top_fraction");
  } finally {
    clf.dispose();
  }
});

Deno.test("pud names the backdoor's target from the model when no label stands out", async () => {
  const clf = await backdooredClassifier();
  try {
    const clean = makeSet(240, 0, 5);
    const r = await pud(clf, clean.images, clean.labels, options({}), ctx);
    assert.equal(r.suspectedTarget, TARGET);
    assert.equal(r.diagnostics?.score, "suspect_drop");
    assert.deepEqual(r.diagnostics?.suspected_classes, [TARGET]);
    const evidence = r.diagnostics?.evidence as { class: number; patch_success: number }[];
    assert.equal(evidence.length, 4);
    assert.ok(evidence[TARGET].patch_success > 0.9);
  } finally {
    clf.dispose();
  }
});

Deno.test("pud falls back to the paper's fine-tune and consistency when nothing stands out", async () => {
  const clf = await cleanClassifier();
  try {
    const clean = makeSet(240, 0, 5);
    const before = await weightsOf(clf);
    const r = await pud(clf, clean.images, clean.labels, options({ finetune_epochs: 1 }), ctx);
    assert.equal(r.suspectedTarget, undefined);
    assert.deepEqual(r.diagnostics?.suspected_classes, []);
    assert.equal(r.diagnostics?.score, "consistency");
    assert.equal(r.scores.length, 240);
    assert.ok(r.flags.reduce((s, v) => s + v, 0) <= 24, "a clean set is barely flagged");
    assert.deepEqual(await weightsOf(clf), before);
  } finally {
    clf.dispose();
  }
});

Deno.test("pud scores by consistency with a purified model when the caller supplies one", async () => {
  const clf = await backdooredClassifier();
  const purified = await backdooredClassifier();
  try {
    await runRound(
      purified,
      extra.images,
      extra.labels,
      parseRoundParams({ schedule: tinySchedule() }),
      undefined,
      { maxSteps: 100_000, maxMs: 600_000 },
    );
    const r = await pud(clf, extra.images, extra.labels, { ...options(), purified }, ctx);
    assert.equal(r.diagnostics?.purified, true);
    const a = auroc(r.scores, extra.poisoned)!;
    assert.ok(a >= 0.9, `AUROC ${a}`);
  } finally {
    clf.dispose();
    purified.dispose();
  }
});

Deno.test("pud stops when its signal is aborted and still restores the weights", async () => {
  const clf = await backdooredClassifier();
  try {
    const before = await weightsOf(clf);
    const ctl = new AbortController();
    ctl.abort(new Error("deadline"));
    await assert.rejects(
      pud(clf, extra.images, extra.labels, options(), { ...ctx, signal: ctl.signal }),
      /deadline/,
    );
    assert.deepEqual(await weightsOf(clf), before);
  } finally {
    clf.dispose();
  }
});

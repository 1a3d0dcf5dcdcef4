import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { apgdTargeted } from "../../src/attacks/apgd_t.ts";
import { autoAttack } from "../../src/attacks/autoattack.ts";
import { type AttackParamsInput, AttackParamsSchema } from "../../src/attacks/options.ts";
import { runAttack } from "../../src/attacks/run.ts";
import { CostExceededError, UnprocessableError } from "../../src/errors.ts";
import { assertNoLeak } from "../_helpers.ts";
import { testBatch, tinyFixture, trainedCnn } from "./_fixtures.ts";

const SHAPE: [number, number, number, number] = [32, 10, 10, 1];

async function tiny(scale?: number) {
  const f = await tinyFixture(scale);
  const images = { shape: SHAPE, data: f.x.subarray(0, 32 * 100) };
  return { ...f, images, labels: f.y.subarray(0, 32) };
}

const run = (t: Awaited<ReturnType<typeof tiny>>, p: AttackParamsInput) =>
  runAttack(t.clf, t.images, t.labels, AttackParamsSchema.parse(p), { maxCost: 1e9 });

Deno.test("apgdTargeted() counts misclassification as success and stays in the ball", async () => {
  const t = await tiny();
  const x = tf.tensor4d(t.images.data, SHAPE);
  const y = tf.tensor1d(t.labels, "int32");
  try {
    const eps = 0.1;
    const r = await assertNoLeak(async () => {
      const out = await apgdTargeted(t.clf, x, y, { eps, targets: 3, steps: 20 });
      const adv = await out.adversarial.data();
      out.adversarial.dispose();
      return { ...out, adv };
    });
    const clean = await x.data();
    let worst = 0;
    for (let i = 0; i < clean.length; i++) worst = Math.max(worst, Math.abs(r.adv[i] - clean[i]));
    assert.ok(worst <= eps, `L-inf ${worst}`);
    r.success.forEach((s, i) => assert.equal(s, r.predictions[i] !== t.labels[i], `image ${i}`));
    assert.ok(r.success.filter(Boolean).length >= 8, "APGD-T breaks the tiny model at eps 0.1");
    // At most 3 targets × 20 steps per image.
    assert.ok(r.queries <= 32 * 3 * 20);
  } finally {
    tf.dispose([x, y]);
    t.clf.dispose();
  }
});

Deno.test("APGD-T and the dlr loss refuse models with too few classes", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(3, 1);
  await assert.rejects(apgdTargeted(clf, x, y), UnprocessableError);
  await assert.rejects(autoAttack(clf, x, y, { version: "fast" }), UnprocessableError);
  const images = { shape: [3, 8, 8, 1] as [number, number, number, number], data: await x.data() };
  const labels = Int32Array.from(await y.data());
  for (
    const p of [{ attack: "autoattack" }, { attack: "apgd", loss: "dlr", target: 0 }] as const
  ) {
    await assert.rejects(
      runAttack(clf, images as never, labels, AttackParamsSchema.parse(p), { maxCost: 1e9 }),
      UnprocessableError,
    );
  }
  tf.dispose([x, y]);
});

Deno.test("the ensemble never reports a higher robust accuracy than any of its members", async () => {
  const t = await tiny();
  try {
    // At 0.04 every member has work: APGD-CE breaks 22 of 32, APGD-T 2 more (measured).
    const eps = 0.04;
    const full = await assertNoLeak(() => run(t, { attack: "autoattack", version: "fast", eps }));
    const ens = full.report.ensemble!;
    assert.deepEqual(ens.members.map((m) => m.member), ["apgd-ce", "apgd-t", "square"]);
    // After each member robust accuracy can only fall, and the worst case is the last figure.
    let prev = full.report.clean_accuracy;
    for (const m of ens.members) {
      assert.ok(m.robust_accuracy <= prev, `${m.member} ${m.robust_accuracy} > ${prev}`);
      prev = m.robust_accuracy;
    }
    assert.equal(ens.worst_case_robust_accuracy, prev);
    assert.ok(prev > 0 && prev < full.report.clean_accuracy, `a partial break: ${prev}`);
    assert.equal(full.report.robust_accuracy, ens.worst_case_robust_accuracy);
    // Each member ran only on the images still correct: attacked = correct − broken so far.
    let left = Math.round(full.report.clean_accuracy * 32);
    for (const m of ens.members) {
      assert.equal(m.attacked, left, m.member);
      left -= m.broken;
    }
    // Per image, who broke it agrees with the success flags.
    for (const im of full.report.images) {
      assert.equal(im.success, im.broken_by !== null, `image ${im.index}`);
      assert.equal(im.success, im.adv_pred !== im.label);
    }
    // Against each member run alone on all images, the ensemble is never weaker.
    for (const member of ["apgd-ce", "apgd-t", "square"] as const) {
      const alone = await run(t, { attack: "autoattack", version: "fast", eps, members: [member] });
      assert.ok(
        ens.worst_case_robust_accuracy <= alone.report.robust_accuracy,
        `${member} alone ${alone.report.robust_accuracy} < ensemble ` +
          `${ens.worst_case_robust_accuracy}`,
      );
    }
    // And never weaker than PGD-20, the old evaluation attack.
    const pgd = await run(t, { attack: "pgd", eps, steps: 20, step_size: eps / 4 });
    assert.ok(ens.worst_case_robust_accuracy <= pgd.report.robust_accuracy);
    assert.equal(ens.gradient_masking.gradient_masking_suspected, false, "the plain model");
  } finally {
    t.clf.dispose();
  }
});

Deno.test("the ensemble warns of gradient masking when only the black-box member breaks images", async () => {
  const t = await tiny(1e4);
  try {
    // CE gradients vanish at ×1e4: with APGD-CE as the only white-box member, Square finds them.
    const r = await run(t, {
      attack: "autoattack",
      version: "fast",
      eps: 0.12,
      members: ["apgd-ce", "square"],
    });
    const check = r.report.ensemble!.gradient_masking;
    assert.equal(check.gradient_masking_suspected, true, JSON.stringify(check));
    assert.ok(check.figures.black_box_only! >= 4, JSON.stringify(check.figures));
    assert.match(check.reasons[0], /black-box attack broke \d+ of 32 images/);
    // APGD-T's DLR is scale-invariant: with it in the ensemble the white-box side catches up.
    const all = await run(t, { attack: "autoattack", version: "fast", eps: 0.12 });
    const after = all.report.ensemble!.members;
    assert.ok(after[1].broken > 0, "APGD-T breaks what APGD-CE could not");
  } finally {
    t.clf.dispose();
  }
});

Deno.test("runAttack() refuses an ensemble over MAX_ATTACK_COST before any work", async () => {
  const t = await tiny();
  try {
    const before = tf.memory().numTensors;
    // fast: 1200 image passes per image, standard 6000; 32 images.
    const params = AttackParamsSchema.parse({ attack: "autoattack" });
    await assert.rejects(
      runAttack(t.clf, t.images, t.labels, params, { maxCost: 32 * 6000 - 1 }),
      CostExceededError,
    );
    const sq = AttackParamsSchema.parse({ attack: "square", queries: 100 });
    await assert.rejects(
      runAttack(t.clf, t.images, t.labels, sq, { maxCost: 3199 }),
      CostExceededError,
    );
    assert.equal(tf.memory().numTensors, before);
  } finally {
    t.clf.dispose();
  }
});

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { distillLoss } from "../../src/purify/train_step.ts";
import { budgetedLogits, budgetMask } from "../../src/purify/trigger_reconstruction.ts";
import { addPerturbation, perturbationStep } from "../../src/purify/universal_perturbation.ts";
import { stampEach } from "../../src/purify/evidence_phase.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { backdooredClassifier, makeSet, TARGET } from "./synthetic_backdoor.ts";

Deno.test("distillLoss() is T²·KL(p₀ ‖ p) over the masked rows, 0 where the logits agree", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const z0 = tf.tensor2d([[2, 0], [0, 3]]);
    const z = tf.tensor2d([[0, 0], [0, 3]]);
    const read = async (f: () => tf.Tensor) => {
      const t = tf.tidy(f);
      const v = await t.data();
      t.dispose();
      return v;
    };
    const same = await read(() => distillLoss(z0, z0, tf.tensor1d([1, 1]), 2));
    assert.ok(Math.abs(same[0]) < 1e-6);
    // Row 0 only: p₀ = softmax([1, 0]), p = softmax([0, 0]) at T = 2.
    const p0 = [Math.exp(1) / (Math.exp(1) + 1), 1 / (Math.exp(1) + 1)];
    const want = 4 * (p0[0] * Math.log(p0[0] / 0.5) + p0[1] * Math.log(p0[1] / 0.5));
    const got = await read(() => distillLoss(z, z0, tf.tensor1d([1, 0]), 2));
    assert.ok(Math.abs(got[0] - want) < 1e-5, `${got[0]} vs ${want}`);
    const none = await read(() => distillLoss(z, z0, tf.tensor1d([0, 0]), 2));
    assert.equal(none[0], 0, "no agreeing row: no term");
    tf.dispose([z0, z]);
  });
});

Deno.test("budgetMask() caps the mask's mean at the budget and leaves a smaller mask alone", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const big = tf.fill([4, 4, 1], 2); // sigmoid(2) ≈ 0.88
    const mean = (t: tf.Tensor, b: number) => tf.tidy(() => tf.mean(budgetMask(t, b)));
    const c = mean(big, 0.1);
    const capped = await c.data();
    assert.ok(Math.abs(capped[0] - 0.1) < 1e-5);
    const small = tf.fill([4, 4, 1], -4); // sigmoid(−4) ≈ 0.018
    const k = mean(small, 0.1);
    const kept = await k.data();
    assert.ok(Math.abs(kept[0] - 1 / (1 + Math.exp(4))) < 1e-6);
    tf.dispose([big, small, c, k]);
  });
  const logits = budgetedLogits(new Float32Array(16).fill(2), 0.1);
  const mean = logits.reduce((s, a) => s + 1 / (1 + Math.exp(-a)), 0) / 16;
  assert.ok(Math.abs(mean - 0.1) < 1e-4, "the budget folds into the stored logits");
});

Deno.test("perturbationStep() keeps δ within eps, images within [0,1], and moves images to the target", async () => {
  const clf = await backdooredClassifier();
  const set = makeSet(64, 0, 4);
  const x = tf.tensor4d(set.images.data, set.images.shape);
  const delta = tf.tidy(() => tf.variable(tf.zeros([10, 10, 1]), false));
  const eps = 0.3;
  try {
    await assertNoLeak(async () => {
      let first = -1, last = -1;
      for (let s = 0; s < 30; s++) {
        const hit = await perturbationStep(clf, delta, x, TARGET, eps / 8, eps);
        if (first < 0) first = hit;
        last = hit;
      }
      const d = await delta.data();
      assert.ok(d.every((v) => Math.abs(v) <= eps + 1e-6), "δ stays in the eps-ball");
      const stamped = tf.tidy(() => addPerturbation(x, delta));
      const px = await stamped.data();
      stamped.dispose();
      assert.ok(px.every((v) => v >= 0 && v <= 1), "pixels stay in [0,1]");
      assert.ok(last > first, `success grows (${first} → ${last})`);
    });
  } finally {
    tf.dispose([x, delta]);
    clf.dispose();
  }
});

Deno.test("stampEach() gives image j the stamp (j + offset) mod S: patch, then additive", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const x = tf.fill([3, 2, 2, 1], 0.5) as tf.Tensor4D;
    const patch = {
      mask: tf.tensor3d([1, 0, 0, 0], [2, 2, 1]),
      pattern: tf.fill([2, 2, 1], 1) as tf.Tensor3D,
      delta: tf.zeros([2, 2, 1]) as tf.Tensor3D,
    };
    const additive = {
      mask: tf.zeros([2, 2, 1]) as tf.Tensor3D,
      pattern: tf.zeros([2, 2, 1]) as tf.Tensor3D,
      delta: tf.fill([2, 2, 1], 0.7) as tf.Tensor3D,
    };
    const out = stampEach(x, [patch, additive], 1);
    const v = Array.from(await out.data());
    assert.deepEqual(v.slice(0, 4), [1, 1, 1, 1], "image 0: additive, clipped to 1");
    assert.deepEqual(v.slice(4, 8), [1, 0.5, 0.5, 0.5], "image 1: the patch's one pixel");
    assert.deepEqual(v.slice(8, 12), [1, 1, 1, 1], "image 2: additive again");
    tf.dispose([x, out, ...Object.values(patch), ...Object.values(additive)]);
  });
});

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { fgsm } from "../../src/attacks/fgsm.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { linearClassifier, rng, testBatch, trainedCnn } from "./_fixtures.ts";

const SHAPE: [number, number, number] = [4, 4, 1];
const D = 16;

/** A 2-class linear model whose weight columns differ in every pixel. */
function twoClassModel() {
  const r = rng(21);
  const w = new Float32Array(D * 2);
  for (let i = 0; i < D; i++) {
    w[2 * i] = r() - 0.5;
    // Keep |w1 − w0| ≥ 0.05 so no sign is a coin flip.
    w[2 * i + 1] = w[2 * i] + (r() < 0.5 ? -1 : 1) * (0.05 + 0.3 * r());
  }
  return { clf: linearClassifier(w, new Float32Array([0.1, -0.1]), SHAPE), w };
}

/** Mid-range pixels, plus a few at the edges of [0,1] so that clipping is exercised. */
function image(): Float32Array {
  const r = rng(5);
  const x = Float32Array.from({ length: D }, () => 0.1 + 0.8 * r());
  x[0] = 0;
  x[1] = 1;
  x[2] = 0.01;
  x[3] = 0.995;
  return x;
}

async function attackOne(
  clf: ReturnType<typeof twoClassModel>["clf"],
  x: Float32Array,
  label: number,
  eps: number,
  target?: number,
) {
  const tx = tf.tensor4d(x, [1, ...SHAPE]);
  const ty = tf.tensor1d([label], "int32");
  const res = await fgsm(clf, tx, ty, { eps, target });
  const adv = await res.adversarial.data() as Float32Array;
  tf.dispose([tx, ty, res.adversarial]);
  return adv;
}

/** Asserts adv − x = eps·s per pixel, to float32 rounding, except where [0,1] clips it. */
function assertSignStep(x: Float32Array, adv: Float32Array, s: number[], eps: number) {
  for (let i = 0; i < D; i++) {
    const want = x[i] + eps * s[i];
    if (want < 0 || want > 1) {
      assert.equal(adv[i], want < 0 ? 0 : 1, `pixel ${i} should clip to the box`);
    } else {
      const d = adv[i] - x[i];
      assert.equal(Math.sign(d), s[i], `pixel ${i} moved the wrong way`);
      assert.ok(Math.abs(d - eps * s[i]) <= 3e-7, `pixel ${i}: step ${d}, expected ${eps * s[i]}`);
    }
  }
}

Deno.test("fgsm() on a 2-class linear model steps exactly eps·sign(w_other − w_label)", async () => {
  await setupBackend();
  const { clf, w } = twoClassModel();
  const x = image();
  for (const eps of [8 / 255, 0.3, 0.05]) {
    for (const label of [0, 1]) {
      const other = 1 - label;
      const s = Array.from({ length: D }, (_, i) => Math.sign(w[2 * i + other] - w[2 * i + label]));
      assertSignStep(x, await attackOne(clf, x, label, eps), s, eps);
      // Targeted at the other class is the same step: down CE(other) is up CE(label) here.
      assertSignStep(x, await attackOne(clf, x, label, eps, other), s, eps);
    }
  }
  clf.model.dispose();
});

Deno.test("targeted fgsm() steps along sign(w_t − Σ_j p_j w_j) on a 3-class linear model", async () => {
  await setupBackend();
  const r = rng(8);
  const w = Float32Array.from({ length: D * 3 }, () => r() - 0.5);
  const clf = linearClassifier(w, new Float32Array(3), SHAPE);
  const x = Float32Array.from({ length: D }, () => 0.2 + 0.6 * r());
  const eps = 0.03;
  // Host-side closed form in doubles: −∇ CE(t) = w_t − Σ_j p_j w_j.
  const z = [0, 1, 2].map((j) => x.reduce((s, v, i) => s + v * w[3 * i + j], 0));
  const e = z.map((v) => Math.exp(v - Math.max(...z)));
  const p = e.map((v) => v / e.reduce((a, b) => a + b, 0));
  for (const t of [1, 2]) {
    const g = Array.from(
      { length: D },
      (_, i) => w[3 * i + t] - p.reduce((s, pj, j) => s + pj * w[3 * i + j], 0),
    );
    const adv = await attackOne(clf, x, 0, eps, t);
    for (let i = 0; i < D; i++) {
      if (Math.abs(g[i]) < 1e-3) continue;
      assert.ok(Math.abs(adv[i] - x[i] - eps * Math.sign(g[i])) <= 3e-7, `target ${t}, pixel ${i}`);
    }
  }
  clf.model.dispose();
});

Deno.test("fgsm() stays in the L-inf ball, reports success consistently and leaks nothing", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(30);
  await assertNoLeak(async () => {
    const eps = 0.08;
    const res = await fgsm(clf, x, y, { eps });
    assert.equal(res.queries, 30);
    const [adv, xs, ys] = [await res.adversarial.data(), await x.data(), await y.data()];
    for (let i = 0; i < adv.length; i++) assert.ok(Math.abs(adv[i] - xs[i]) <= eps);
    for (let i = 0; i < 30; i++) assert.equal(res.success[i], res.predictions[i] !== ys[i]);
    assert.ok(
      res.success.some(Boolean) && !res.success.every(Boolean),
      "eps 0.08 is a partial win",
    );
    res.adversarial.dispose();
  });
  tf.dispose([x, y]);
});

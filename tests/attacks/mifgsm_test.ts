import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { fgsm } from "../../src/attacks/fgsm.ts";
import { mifgsm } from "../../src/attacks/mifgsm.ts";
import { pgd } from "../../src/attacks/pgd.ts";
import type { AttackResult } from "../../src/attacks/types.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { linearClassifier, rng, testBatch, trainedCnn } from "./_fixtures.ts";

const rate = (s: boolean[]) => s.filter(Boolean).length / s.length;

async function take(res: AttackResult): Promise<Float32Array> {
  const a = await res.adversarial.data() as Float32Array;
  res.adversarial.dispose();
  return a;
}

/**
 * MI-FGSM in doubles on a linear model z = xW (untargeted CE, no early stop), where the input
 * gradient is Σ_j p_j w_j − w_y. `normalise` false drops the L1 normalisation, to show that the
 * comparison can tell the two apart.
 */
function reference(
  x: Float32Array,
  w: Float32Array,
  k: number,
  y: number,
  o: { eps: number; alpha: number; mu: number; steps: number; normalise: boolean },
): number[] {
  const d = x.length;
  const adv = Array.from(x);
  let g = new Array<number>(d).fill(0);
  for (let t = 0; t < o.steps; t++) {
    const z = Array.from({ length: k }, (_, j) => adv.reduce((s, v, i) => s + v * w[i * k + j], 0));
    const e = z.map((v) => Math.exp(v - Math.max(...z)));
    const p = e.map((v) => v / e.reduce((a, b) => a + b, 0));
    const grad = Array.from(
      { length: d },
      (_, i) => p.reduce((s, pj, j) => s + pj * w[i * k + j], 0) - w[i * k + y],
    );
    const l1 = o.normalise ? grad.reduce((s, v) => s + Math.abs(v), 0) : 1;
    g = g.map((gi, i) => o.mu * gi + grad[i] / l1);
    for (let i = 0; i < d; i++) {
      const v = adv[i] + o.alpha * Math.sign(g[i]);
      adv[i] = Math.min(1, Math.max(0, Math.min(x[i] + o.eps, Math.max(x[i] - o.eps, v))));
    }
  }
  return adv;
}

Deno.test("mifgsm() follows the sign of the momentum of L1-normalised gradients", async () => {
  await setupBackend();
  const r = rng(107);
  const k = 3, d = 16;
  const w = Float32Array.from({ length: d * k }, () => 5 * (r() - 0.5));
  const clf = linearClassifier(w, new Float32Array(k), [4, 4, 1]);
  const x = Float32Array.from({ length: d }, () => 0.2 + 0.6 * r());
  const o = { eps: 0.2, alpha: 0.03, mu: 1.0, steps: 6 };
  const tx = tf.tensor4d(x, [1, 4, 4, 1]);
  const ty = tf.tensor1d([0], "int32");
  const adv = await take(
    await mifgsm(clf, tx, ty, {
      eps: o.eps,
      stepSize: o.alpha,
      momentum: o.mu,
      steps: o.steps,
      earlyStop: false,
    }),
  );
  const want = reference(x, w, k, 0, { ...o, normalise: true });
  for (let i = 0; i < d; i++) {
    assert.ok(Math.abs(adv[i] - want[i]) <= 1e-5, `pixel ${i}: ${adv[i]} vs ${want[i]}`);
  }
  // The same walk without the normalisation ends elsewhere, so the check above can tell.
  const unnormalised = reference(x, w, k, 0, { ...o, normalise: false });
  assert.ok(unnormalised.some((v, i) => Math.abs(v - want[i]) > 1e-3));
  tf.dispose([tx, ty]);
  clf.model.dispose();
});

Deno.test("mifgsm() with momentum 0 is exactly I-FGSM (pgd without random start)", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(20);
  for (const earlyStop of [false, true]) {
    const opts = { eps: 0.06, steps: 5, stepSize: 0.015, earlyStop };
    const a = await take(await mifgsm(clf, x, y, { ...opts, momentum: 0 }));
    const b = await take(await pgd(clf, x, y, { ...opts, randomStart: false }));
    assert.deepEqual(a, b);
  }
  const mu0 = await take(
    await mifgsm(clf, x, y, { eps: 0.06, steps: 5, momentum: 0, earlyStop: false }),
  );
  const mu1 = await take(
    await mifgsm(clf, x, y, { eps: 0.06, steps: 5, momentum: 1, earlyStop: false }),
  );
  assert.notDeepEqual(mu0, mu1);
  tf.dispose([x, y]);
});

Deno.test("mifgsm() stays within the L-inf ball and beats fgsm at the same eps", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(60);
  const xs = await x.data();
  for (const eps of [0.05, 0.08, 8 / 255]) {
    const m = await mifgsm(clf, x, y, { eps, steps: 10 });
    const f = await fgsm(clf, x, y, { eps });
    assert.ok(rate(m.success) >= rate(f.success), `eps ${eps}`);
    f.adversarial.dispose();
    const adv = await take(m);
    for (let i = 0; i < adv.length; i++) {
      assert.ok(adv[i] >= 0 && adv[i] <= 1 && Math.abs(adv[i] - xs[i]) <= eps, `pixel ${i}`);
    }
  }
  tf.dispose([x, y]);
});

Deno.test("mifgsm() leaks no tensor", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(10);
  await assertNoLeak(async () => {
    for (const earlyStop of [true, false]) {
      (await mifgsm(clf, x, y, { eps: 0.1, steps: 4, earlyStop, target: 1 })).adversarial.dispose();
    }
  });
  tf.dispose([x, y]);
});

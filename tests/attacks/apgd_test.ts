import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { apgd, apgdCheckpoints, halveStep } from "../../src/attacks/apgd.ts";
import { marginLoss } from "../../src/attacks/losses.ts";
import { pgd } from "../../src/attacks/pgd.ts";
import type { AttackResult } from "../../src/attacks/types.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { CLASSES, mlpClassifier, rng, testBatch, trainedCnn } from "./_fixtures.ts";

const rate = (s: boolean[]) => s.filter(Boolean).length / s.length;

async function take(res: AttackResult): Promise<Float32Array> {
  const a = await res.adversarial.data() as Float32Array;
  res.adversarial.dispose();
  return a;
}

Deno.test("apgdCheckpoints() follows p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)", () => {
  assert.deepEqual(apgdCheckpoints(100), [22, 41, 57, 70, 80, 87, 93, 99]);
  assert.deepEqual(apgdCheckpoints(20), [5, 9, 12, 14, 16, 18, 19]);
  assert.deepEqual(apgdCheckpoints(1), []);
  const w = apgdCheckpoints(1000);
  assert.equal(w[0], 220);
  for (let j = 1; j < w.length; j++) assert.ok(w[j] > w[j - 1]);
});

Deno.test("halveStep() halves on too few loss increases, or on a stall after a step that was not halved", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    // window 10, ρ 0.75: fewer than 7.5 increases halves.
    const inc = tf.tensor1d([7, 8, 8, 8, 8]);
    const reducedLast = tf.tensor1d([false, false, false, true, false], "bool");
    const bestAtLast = tf.tensor1d([1, 1, 2, 2, 2]);
    const best = tf.tensor1d([2, 2, 2, 2, 3]);
    const h = halveStep(inc, 10, 0.75, reducedLast, bestAtLast, best);
    // [oscillating, fine, stalled & not halved before, stalled but halved before, improved]
    assert.deepEqual(Array.from(await h.data(), Boolean), [true, false, true, false, false]);
    tf.dispose([inc, reducedLast, bestAtLast, best, h]);
  });
});

/** A 2-layer tanh MLP on 4×4 images: input gradients by hand, in doubles. */
function mlp(seed: number) {
  const r = rng(seed);
  const [d, h, k] = [16, 8, 3];
  // Large weights: tanh saturates, so the loss surface inside the ball has real curvature.
  const w1 = Float32Array.from({ length: d * h }, () => 4 * (r() - 0.5));
  const b1 = Float32Array.from({ length: h }, () => 0.2 * (r() - 0.5));
  const w2 = Float32Array.from({ length: h * k }, () => 6 * (r() - 0.5));
  const b2 = new Float32Array(k);
  const x = Float32Array.from({ length: d }, () => 0.2 + 0.6 * r());
  const evaluate = (v: number[], y: number) => {
    const hid = Array.from(
      { length: h },
      (_, j) => Math.tanh(v.reduce((s, xi, i) => s + xi * w1[i * h + j], b1[j])),
    );
    const z = Array.from(
      { length: k },
      (_, c) => hid.reduce((s, hj, j) => s + hj * w2[j * k + c], b2[c]),
    );
    const m = Math.max(...z);
    const e = z.map((zi) => Math.exp(zi - m));
    const sum = e.reduce((a, b) => a + b, 0);
    const p = e.map((ei) => ei / sum);
    const loss = Math.log(sum) + m - z[y];
    const dh = Array.from(
      { length: h },
      (_, j) =>
        p.reduce((s, pc, c) => s + (pc - (c === y ? 1 : 0)) * w2[j * k + c], 0) * (1 - hid[j] ** 2),
    );
    const grad = Array.from(
      { length: d },
      (_, i) => dh.reduce((s, dj, j) => s + dj * w1[i * h + j], 0),
    );
    const pred = z.indexOf(m);
    return { loss, grad, success: pred !== y };
  };
  return { clf: mlpClassifier(w1, b1, w2, b2, [4, 4, 1]), x, evaluate };
}

/** APGD-CE, L-inf, untargeted, no random start, in doubles: Algorithm 1 as `apgd.ts` documents it. */
function reference(
  x: Float32Array,
  y: number,
  evaluate: ReturnType<typeof mlp>["evaluate"],
  o: { eps: number; steps: number; earlyStop: boolean },
) {
  const proj = (v: number[]) =>
    v.map((vi, i) => Math.min(1, Math.max(0, Math.min(x[i] + o.eps, Math.max(x[i] - o.eps, vi)))));
  const x0 = Array.from(x);
  const e0 = evaluate(x0, y);
  let [cur, prev, grad, loss] = [x0, x0, e0.grad, e0.loss];
  let [best, bestGrad, bestLoss, bestSuccess] = [x0, e0.grad, e0.loss, e0.success];
  let [eta, inc, reducedLast, bestAtLast] = [2 * o.eps, 0, false, e0.loss];
  let [hit, everHit] = [x0, e0.success];
  let [halvings, last, minRel] = [0, 0, Infinity];
  const checkpoints = new Set(apgdCheckpoints(o.steps));
  for (let k = 0; k + 1 < o.steps; k++) {
    if (o.earlyStop && everHit) break;
    const a = k === 0 ? 1 : 0.75;
    const peak = Math.max(...grad.map(Math.abs));
    minRel = Math.min(minRel, ...grad.map((g) => Math.abs(g) / peak));
    const z = proj(cur.map((c, i) => c + eta * Math.sign(grad[i])));
    const next = proj(cur.map((c, i) => c + a * (z[i] - c) + (1 - a) * (c - prev[i])));
    const ev = evaluate(next, y);
    if (ev.success && !(o.earlyStop && everHit)) hit = next;
    everHit ||= ev.success;
    if (ev.loss > bestLoss) {
      [best, bestGrad, bestLoss, bestSuccess] = [next, ev.grad, ev.loss, ev.success];
    }
    if (ev.loss > loss) inc++;
    [prev, cur, grad, loss] = [cur, next, ev.grad, ev.loss];
    const i = k + 1;
    if (checkpoints.has(i)) {
      const halve = inc < 0.75 * (i - last) || (!reducedLast && bestLoss <= bestAtLast);
      if (halve) {
        eta /= 2;
        halvings++;
        [cur, prev, grad, loss] = [best, best, bestGrad, bestLoss];
      }
      [reducedLast, bestAtLast, inc, last] = [halve, bestLoss, 0, i];
    }
  }
  const out = o.earlyStop ? (everHit ? hit : best) : bestSuccess ? best : everHit ? hit : best;
  return { out, halvings, everHit, minRel };
}

Deno.test("apgd() matches a double-precision reference of Algorithm 1 on a small MLP", async () => {
  await setupBackend();
  let exercised = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const { clf, x, evaluate } = mlp(seed);
    const y = [0, 1, 2].find((c) => !evaluate(Array.from(x), c).success)!;
    for (
      const o of [
        { eps: 0.2, steps: 20, earlyStop: false },
        { eps: 0.3, steps: 20, earlyStop: false },
        { eps: 0.1, steps: 20, earlyStop: true },
      ]
    ) {
      const want = reference(x, y, evaluate, o);
      // Near-zero gradient components make signs a float32-vs-double coin flip: skip those.
      if (want.minRel < 1e-4) continue;
      const tx = tf.tensor4d(x, [1, 4, 4, 1]);
      const ty = tf.tensor1d([y], "int32");
      const res = await apgd(clf, tx, ty, { ...o, randomStart: false });
      assert.equal(res.success[0], evaluate(want.out, y).success, `seed ${seed}`);
      const adv = await take(res);
      for (let i = 0; i < 16; i++) {
        assert.ok(
          Math.abs(adv[i] - want.out[i]) <= 1e-5,
          `seed ${seed} ${JSON.stringify(o)} pixel ${i}: ${adv[i]} vs ${want.out[i]}`,
        );
      }
      if (want.halvings > 0) exercised++;
      tf.dispose([tx, ty]);
    }
    clf.model.dispose();
  }
  assert.ok(exercised >= 3, `only ${exercised} runs halved the step: the comparison needs more`);
});

Deno.test("apgd() is at least as strong as pgd() with the same eps and steps", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(60);
  // APGD's schedule is built for tens of steps or more; at 5-10 steps it can trail by an image.
  for (const eps of [0.06, 0.07, 0.08]) {
    for (const steps of [20, 50]) {
      const p = await pgd(clf, x, y, { eps, steps });
      const a = await apgd(clf, x, y, { eps, steps });
      assert.ok(
        rate(a.success) >= rate(p.success),
        `eps ${eps}, ${steps} steps: apgd ${rate(a.success)} < pgd ${rate(p.success)}`,
      );
      tf.dispose([p.adversarial, a.adversarial]);
    }
  }
  tf.dispose([x, y]);
});

Deno.test("apgd() without early stopping reaches a higher margin than pgd() on average", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(30);
  const opts = { eps: 0.05, steps: 20, loss: "margin" as const, earlyStop: false };
  const meanMargin = async (res: AttackResult) => {
    const m = tf.tidy(() => tf.mean(marginLoss(clf.logits(res.adversarial), y)));
    const v = (await m.data())[0];
    tf.dispose([m, res.adversarial]);
    return v;
  };
  const p = await meanMargin(await pgd(clf, x, y, opts));
  const a = await meanMargin(await apgd(clf, x, y, opts));
  assert.ok(a >= p, `apgd margin ${a} < pgd margin ${p}`);
  tf.dispose([x, y]);
});

Deno.test("targeted apgd() drives at least 90% of images to their target, with ce and margin", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(30);
  const labels = await y.data();
  const target = Int32Array.from(labels, (l) => (l + 2) % CLASSES);
  for (const loss of ["ce", "margin"] as const) {
    const res = await apgd(clf, x, y, { eps: 0.15, steps: 20, target, loss });
    const z = tf.tidy(() => tf.cast(tf.argMax(clf.logits(res.adversarial), 1), "int32"));
    const preds = await z.data();
    const hits = Array.from(preds).filter((p, i) => p === target[i]).length;
    assert.deepEqual(res.success, Array.from(preds, (p, i) => p === target[i]));
    assert.ok(hits / 30 >= 0.9, `${loss}: only ${hits}/30 reached their target`);
    tf.dispose([z, res.adversarial]);
  }
  tf.dispose([x, y]);
});

Deno.test("apgd() stays within the L-inf and L2 balls", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(20);
  const xs = await x.data();
  for (const [norm, eps] of [["linf", 8 / 255], ["linf", 0.3], ["l2", 0.5], ["l2", 1]] as const) {
    const adv = await take(await apgd(clf, x, y, { norm, eps, steps: 10, earlyStop: false }));
    for (let i = 0; i < 20; i++) {
      let sq = 0;
      for (let j = i * 64; j < (i + 1) * 64; j++) {
        const d = Math.abs(adv[j] - xs[j]);
        assert.ok(adv[j] >= 0 && adv[j] <= 1);
        if (norm === "linf") assert.ok(d <= eps, `${norm} ${eps}: pixel ${j} moved ${d}`);
        sq += d * d;
      }
      if (norm === "l2") assert.ok(Math.sqrt(sq) <= eps * (1 + 1e-6), `${eps}: image ${i}`);
    }
  }
  tf.dispose([x, y]);
});

Deno.test("apgd() repeats with the same seed, differs with another, and stops early when all succeed", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(12);
  const opts = { eps: 0.05, steps: 5, earlyStop: false };
  const a = await take(await apgd(clf, x, y, { ...opts, seed: 1 }));
  const b = await take(await apgd(clf, x, y, { ...opts, seed: 1 }));
  const c = await take(await apgd(clf, x, y, { ...opts, seed: 2 }));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const easy = await apgd(clf, x, y, { eps: 0.5, steps: 50 });
  assert.ok(easy.success.every(Boolean));
  assert.ok(easy.queries < 12 * 50, `early stop saved nothing: ${easy.queries}`);
  easy.adversarial.dispose();
  tf.dispose([x, y]);
});

Deno.test("apgd() leaks no tensor, across norms, restarts and early stopping", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(10);
  await assertNoLeak(async () => {
    for (const earlyStop of [true, false]) {
      for (const norm of ["linf", "l2"] as const) {
        const res = await apgd(clf, x, y, { eps: 0.1, steps: 12, restarts: 2, earlyStop, norm });
        res.adversarial.dispose();
      }
    }
    const ctl = new AbortController();
    ctl.abort(new Error("stop"));
    await assert.rejects(apgd(clf, x, y, { signal: ctl.signal }), /stop/);
  });
  tf.dispose([x, y]);
});

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { HostRandom } from "../../src/attacks/host_random.ts";
import { pgd } from "../../src/attacks/pgd.ts";
import { l2Side, linfSide, pseudoGaussian, square, squareP } from "../../src/attacks/square.ts";
import { UnprocessableError } from "../../src/errors.ts";
import type { Classifier } from "../../src/model/classifier.ts";
import { assertNoLeak } from "../_helpers.ts";
import { testBatch, tinyFixture, trainedCnn } from "./_fixtures.ts";

/** `clf` that keeps a copy of every batch it is asked about (read back after the attack). */
function recording(clf: Classifier) {
  const seen: tf.Tensor4D[] = [];
  const wrapped: Classifier = {
    ...clf,
    logits: (x, training) => {
      seen.push(tf.keep(tf.clone(x)));
      return clf.logits(x, training);
    },
  };
  return { wrapped, seen };
}

/** For every queried row: its distance to the nearest clean image (L-inf or L2) and its range. */
async function queried(seen: tf.Tensor4D[], clean: Float32Array, per: number) {
  const n = clean.length / per;
  let worstLinf = 0, worstL2 = 0, lo = Infinity, hi = -Infinity, rows = 0;
  for (const t of seen) {
    const d = await t.data() as Float32Array;
    for (let r = 0; r < d.length / per; r++) {
      rows++;
      let bestLinf = Infinity, bestL2 = Infinity;
      for (let i = 0; i < n; i++) {
        let li = 0, sq = 0;
        for (let p = 0; p < per; p++) {
          const v = d[r * per + p];
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
          const diff = Math.abs(v - clean[i * per + p]);
          li = Math.max(li, diff);
          sq += diff * diff;
        }
        bestLinf = Math.min(bestLinf, li);
        bestL2 = Math.min(bestL2, Math.sqrt(sq));
      }
      worstLinf = Math.max(worstLinf, bestLinf);
      worstL2 = Math.max(worstL2, bestL2);
    }
  }
  tf.dispose(seen);
  return { worstLinf, worstL2, lo, hi, rows };
}

Deno.test("square() keeps every image it queries within eps of its clean image and in [0,1]", async () => {
  const clf = await trainedCnn();
  for (const [norm, eps] of [["linf", 0.05], ["l2", 0.5]] as const) {
    const { x, y } = testBatch(6, 5);
    const clean = await x.data() as Float32Array;
    const { wrapped, seen } = recording(clf);
    const before = tf.memory().numTensors;
    const out = await square(wrapped, x, y, { eps, norm, queries: 60, seed: 2 });
    const r = { ...out, adv: await out.adversarial.data() };
    out.adversarial.dispose();
    // Nothing left behind but the recorded copies.
    assert.equal(tf.memory().numTensors, before + seen.length, "tensor leak");
    const q = await queried(seen, clean, 64);
    // Queries counted are the rows the model was asked about, and no more than the budget.
    assert.equal(q.rows, r.queries, norm);
    assert.ok(r.queries <= 6 * 60, norm);
    assert.ok(q.lo >= 0 && q.hi <= 1, `${norm}: pixels in [${q.lo}, ${q.hi}]`);
    if (norm === "linf") assert.ok(q.worstLinf <= eps, `L-inf ${q.worstLinf} > ${eps}`);
    else assert.ok(q.worstL2 <= eps, `L2 ${q.worstL2} > ${eps}`);
    // The returned images too, each against its own clean image.
    for (let i = 0; i < 6; i++) {
      let li = 0, sq = 0;
      for (let p = i * 64; p < (i + 1) * 64; p++) {
        const d = Math.abs(r.adv[p] - clean[p]);
        li = Math.max(li, d);
        sq += d * d;
      }
      assert.ok(norm === "linf" ? li <= eps : Math.sqrt(sq) <= eps, `${norm} image ${i}`);
    }
    tf.dispose([x, y]);
  }
});

Deno.test("square() breaks images with scores alone and stops querying an image once broken", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(12, 9);
  const r = await assertNoLeak(async () => {
    const out = await square(clf, x, y, { eps: 0.2, queries: 300, seed: 1 });
    out.adversarial.dispose();
    return out;
  });
  const broken = r.success.filter(Boolean).length;
  assert.ok(broken >= 10, `only ${broken} of 12 broken at eps 0.2`);
  // Early success saves queries: far fewer than images × budget were spent.
  assert.ok(r.queries < 12 * 300 / 2, `${r.queries} queries`);
  const labels = await y.data();
  r.success.forEach((s, i) => assert.equal(s, r.predictions[i] !== labels[i]));
  tf.dispose([x, y]);
});

Deno.test("square() beats PGD on a model whose logits are scaled by 1e4 (gradient masking)", async () => {
  const plain = await tinyFixture();
  const masked = await tinyFixture(1e4);
  const n = 32, per = 100, eps = 0.15;
  const x = tf.tensor4d(plain.x.subarray(0, n * per), [n, 10, 10, 1]);
  const y = tf.tensor1d(plain.y.subarray(0, n), "int32");
  try {
    const count = (s: boolean[]) => s.filter(Boolean).length;
    const run = async (clf: Classifier) => {
      const p = await pgd(clf, x, y, { eps, steps: 20, seed: 1 });
      const s = await square(clf, x, y, { eps, queries: 400, seed: 1 });
      tf.dispose([p.adversarial, s.adversarial]);
      return { pgd: count(p.success), square: count(s.success) };
    };
    const a = await run(plain.clf);
    const b = await run(masked.clf);
    assert.ok(a.pgd >= n / 2, `PGD breaks the plain model: ${a.pgd}/${n}`);
    // ×1e4 saturates softmax: cross-entropy gradients are 0 and PGD loses its way...
    assert.ok(b.pgd <= a.pgd / 2, `PGD on the masked model: ${b.pgd} vs ${a.pgd}`);
    // ...while Square, which only compares scores, is as strong as on the plain model.
    assert.ok(b.square >= b.pgd + n / 4, `Square ${b.square} vs PGD ${b.pgd} on the masked model`);
  } finally {
    tf.dispose([x, y]);
    plain.clf.dispose();
    masked.clf.dispose();
  }
});

Deno.test("squareP() halves p on the paper's schedule, rescaled to the query budget", () => {
  assert.equal(squareP(0.8, 0, 10000), 0.8);
  assert.equal(squareP(0.8, 10, 10000), 0.8);
  assert.equal(squareP(0.8, 11, 10000), 0.4);
  assert.equal(squareP(0.8, 51, 10000), 0.2);
  assert.equal(squareP(0.8, 8001, 10000), 0.8 / 512);
  // 5000 queries: iteration 2500 is the paper's 5000, after the 4000 mark (÷64).
  assert.equal(squareP(0.8, 2500, 5000), 0.8 / 128);
  assert.equal(linfSide(0.8, 28, 28), 25);
  assert.equal(linfSide(1, 28, 28), 27);
  assert.equal(linfSide(1e-4, 28, 28), 1);
  assert.equal(l2Side(0.8, 28, 28), 25);
  assert.equal(l2Side(1e-4, 28, 28), 3);
  assert.equal(l2Side(1, 10, 10), 9);
});

Deno.test("pseudoGaussian() has unit norm, a positive and a negative half, and peaks in their centres", () => {
  const r = new HostRandom(3);
  for (const s of [3, 5, 9]) {
    const p = pseudoGaussian(s, r);
    assert.ok(Math.abs(p.reduce((a, v) => a + v * v, 0) - 1) < 1e-9);
    assert.ok(Math.abs(p.reduce((a, v) => a + v, 0)) < 0.5, "the halves nearly cancel");
    assert.ok(p.some((v) => v > 0) && p.some((v) => v < 0));
  }
});

Deno.test("square() refuses bad numbers and targets that are not classes", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(2, 1);
  for (
    const bad of [{ queries: 0 }, { queries: 1.5 }, { eps: 0 }, { pInit: 0 }, { restarts: 0 }, {
      target: 9,
    }, { target: [0] }]
  ) {
    await assert.rejects(square(clf, x, y, bad), UnprocessableError, JSON.stringify(bad));
  }
  tf.dispose([x, y]);
});

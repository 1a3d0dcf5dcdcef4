import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { fgsm } from "../../src/attacks/fgsm.ts";
import { pgd } from "../../src/attacks/pgd.ts";
import type { AttackResult } from "../../src/attacks/types.ts";
import { assertNoLeak } from "../_helpers.ts";
import { CLASSES, testBatch, trainedCnn } from "./_fixtures.ts";

const rate = (s: boolean[]) => s.filter(Boolean).length / s.length;

async function take(res: AttackResult): Promise<Float32Array> {
  const a = await res.adversarial.data() as Float32Array;
  res.adversarial.dispose();
  return a;
}

async function predictions(x: tf.Tensor4D): Promise<Int32Array> {
  const clf = await trainedCnn();
  const p = tf.tidy(() => tf.cast(tf.argMax(clf.logits(x), 1), "int32"));
  const out = await p.data() as Int32Array;
  p.dispose();
  return out;
}

Deno.test("pgd() with 10 steps is never weaker than fgsm() at the same eps", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(60);
  for (const eps of [0.05, 0.08, 0.1]) {
    const f = await fgsm(clf, x, y, { eps });
    const p = await pgd(clf, x, y, { eps, steps: 10 });
    assert.ok(
      rate(p.success) >= rate(f.success),
      `eps ${eps}: pgd ${rate(p.success)} < fgsm ${rate(f.success)}`,
    );
    tf.dispose([f.adversarial, p.adversarial]);
  }
  // At 0.08 FGSM only half-works, so the comparison above has teeth.
  const f = await fgsm(clf, x, y, { eps: 0.08 });
  assert.ok(rate(f.success) < 0.8, `fgsm already at ${rate(f.success)}`);
  f.adversarial.dispose();
  tf.dispose([x, y]);
});

Deno.test("targeted pgd() drives at least 90% of images to their target class", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(30);
  const labels = await y.data();
  const target = Int32Array.from(labels, (l) => (l + 1) % CLASSES);
  const res = await pgd(clf, x, y, { eps: 0.15, steps: 20, target });
  const preds = await predictions(res.adversarial);
  let hits = 0;
  for (let i = 0; i < 30; i++) {
    assert.equal(res.success[i], preds[i] === target[i]);
    hits += preds[i] === target[i] ? 1 : 0;
  }
  assert.ok(hits / 30 >= 0.9, `only ${hits}/30 reached their target`);
  res.adversarial.dispose();
  tf.dispose([x, y]);
});

Deno.test("l2 pgd() keeps every image within the L2 ball and still succeeds", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(30);
  const xs = await x.data();
  for (const eps of [0.5, 1.0]) {
    const res = await pgd(clf, x, y, { eps, norm: "l2", steps: 10 });
    const success = res.success;
    const adv = await take(res);
    for (let i = 0; i < 30; i++) {
      let sq = 0;
      for (let j = i * 64; j < (i + 1) * 64; j++) {
        assert.ok(adv[j] >= 0 && adv[j] <= 1);
        sq += (adv[j] - xs[j]) ** 2;
      }
      assert.ok(Math.sqrt(sq) <= eps * (1 + 1e-6), `image ${i}: ${Math.sqrt(sq)} > ${eps}`);
    }
    if (eps === 1.0) assert.ok(rate(success) >= 0.5, `l2 eps 1.0: only ${rate(success)}`);
  }
  tf.dispose([x, y]);
});

Deno.test("pgd() random starts repeat with the same seed and differ with another", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(12);
  const opts = { eps: 0.05, steps: 3, earlyStop: false };
  const a = await take(await pgd(clf, x, y, { ...opts, seed: 7 }));
  const b = await take(await pgd(clf, x, y, { ...opts, seed: 7 }));
  const c = await take(await pgd(clf, x, y, { ...opts, seed: 8 }));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  // Without a random start the seed has nothing to seed.
  const d = await take(await pgd(clf, x, y, { ...opts, seed: 7, randomStart: false }));
  const e = await take(await pgd(clf, x, y, { ...opts, seed: 8, randomStart: false }));
  assert.deepEqual(d, e);
  tf.dispose([x, y]);
});

Deno.test("pgd() with early stopping returns each image's first successful iterate", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(30);
  const labels = await y.data();
  const T = 10;
  const base = { eps: 0.08, stepSize: 0.02, randomStart: false };
  // The iterates x⁰..x^T without early stopping (PGD with t steps ends at xᵗ).
  const iterates: Float32Array[] = [await x.data() as Float32Array];
  const succeeded: boolean[][] = [Array.from(await predictions(x), (p, i) => p !== labels[i])];
  for (let t = 1; t <= T; t++) {
    const res = await pgd(clf, x, y, { ...base, steps: t, earlyStop: false });
    succeeded.push(res.success);
    iterates.push(await take(res));
  }
  const stopped = await pgd(clf, x, y, { ...base, steps: T, earlyStop: true });
  const adv = await take(stopped);
  let frozenEarly = 0;
  for (let i = 0; i < 30; i++) {
    const first = succeeded.findIndex((s) => s[i]);
    const t = first < 0 ? T : first;
    const want = iterates[t].subarray(i * 64, (i + 1) * 64);
    assert.deepEqual(
      adv.subarray(i * 64, (i + 1) * 64),
      want,
      `image ${i} (first success ${first})`,
    );
    if (first >= 0 && first < T) {
      frozenEarly++;
      // Without early stopping it would have moved on.
      assert.notDeepEqual(iterates[T].subarray(i * 64, (i + 1) * 64), want);
    }
  }
  assert.ok(frozenEarly >= 5, `only ${frozenEarly} images stopped early; the test needs more`);
  tf.dispose([x, y]);
});

Deno.test("pgd() restarts keep every success of the first run and stop early when all succeed", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(30);
  const one = await pgd(clf, x, y, { eps: 0.06, steps: 5, seed: 3 });
  const three = await pgd(clf, x, y, { eps: 0.06, steps: 5, seed: 3, restarts: 3 });
  for (let i = 0; i < 30; i++) if (one.success[i]) assert.ok(three.success[i], `image ${i} lost`);
  assert.ok(rate(three.success) >= rate(one.success));
  tf.dispose([one.adversarial, three.adversarial]);
  // A budget that wins everything at the start point: no gradient steps after the first.
  const easy = await pgd(clf, x, y, { eps: 0.5, steps: 10, restarts: 3 });
  assert.ok(easy.success.every(Boolean));
  assert.ok(easy.queries < 30 * 10, `early stop saved nothing: ${easy.queries} queries`);
  easy.adversarial.dispose();
  tf.dispose([x, y]);
});

Deno.test("pgd() leaks no tensor, with or without early stopping and restarts", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(10);
  await assertNoLeak(async () => {
    for (const earlyStop of [true, false]) {
      for (const norm of ["linf", "l2"] as const) {
        const res = await pgd(clf, x, y, { eps: 0.1, steps: 4, restarts: 2, earlyStop, norm });
        res.adversarial.dispose();
      }
    }
  });
  tf.dispose([x, y]);
});

Deno.test("pgd() stops with the signal's reason when aborted, leaving no tensor behind", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(10);
  await assertNoLeak(async () => {
    const ctl = new AbortController();
    const reason = new Error("deadline");
    ctl.abort(reason);
    await assert.rejects(pgd(clf, x, y, { signal: ctl.signal }), (e) => e === reason);
    // Aborted mid-run: after the third gradient evaluation.
    const late = new AbortController();
    let calls = 0;
    const counting = {
      ...clf,
      logits: (t: tf.Tensor4D, training?: boolean) => {
        if (++calls === 3) late.abort(reason);
        return clf.logits(t, training);
      },
    };
    await assert.rejects(
      pgd(counting, x, y, { steps: 10, restarts: 2, signal: late.signal, earlyStop: false }),
      (e) => e === reason,
    );
    assert.equal(calls, 3);
  });
  tf.dispose([x, y]);
});

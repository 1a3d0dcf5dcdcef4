import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  attackObjective,
  crossEntropy,
  dlrLoss,
  kthLargest,
  marginLoss,
  targetedDlrLoss,
} from "../../src/attacks/losses.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

const Z = [[2, -1, 0.5], [0.1, 3, 3.2], [-2, -2, 5]];
const Y = [0, 2, 1];

function close(actual: ArrayLike<number>, expected: number[], tol = 1e-5) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] ${actual[i]} vs ${expected[i]}`);
  }
}

const ce = (z: number[], y: number) => Math.log(z.reduce((s, v) => s + Math.exp(v), 0)) - z[y];
const margin = (z: number[], y: number) => Math.max(...z.filter((_, j) => j !== y)) - z[y];

Deno.test("crossEntropy() is logsumexp(z) − z_y per sample", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const [z, y] = [tf.tensor2d(Z), tf.tensor1d(Y, "int32")];
    const l = crossEntropy(z, y);
    close(await l.data(), Z.map((r, i) => ce(r, Y[i])));
    tf.dispose([z, y, l]);
  });
});

Deno.test("marginLoss() is the best other logit minus the label's, positive when misclassified", async () => {
  await setupBackend();
  const [z, y] = [tf.tensor2d(Z), tf.tensor1d(Y, "int32")];
  const l = await marginLoss(z, y).data();
  close(l, [-1.5, -0.2, 7]);
  close(l, Z.map((r, i) => margin(r, Y[i])));
  tf.dispose([z, y]);
});

Deno.test("attackObjective() negates the loss to the target in targeted mode", async () => {
  await setupBackend();
  const [z, t] = [tf.tensor2d(Z), tf.tensor1d([1, 1, 0], "int32")];
  close(await attackObjective(z, t, "ce", true).data(), Z.map((r, i) => -ce(r, [1, 1, 0][i])));
  // Targeted margin: z_t − max_{j≠t} z_j.
  close(await attackObjective(z, t, "margin", true).data(), [-3, -0.2, -7]);
  close(await attackObjective(z, t, "margin", false).data(), [3, 0.2, 7]);
  tf.dispose([z, t]);
});

Deno.test("the margin loss's gradient is finite and touches only the two competing logits", async () => {
  await setupBackend();
  const [z, y] = [tf.tensor2d(Z), tf.tensor1d(Y, "int32")];
  const g = tf.grad((t: tf.Tensor) => tf.sum(marginLoss(t as tf.Tensor2D, y)))(z);
  close(await g.data(), [-1, 0, 1, 0, 1, -1, 0, -1, 1]);
  tf.dispose([z, y, g]);
});

Deno.test("dlrLoss() and targetedDlrLoss() match Croce & Hein's formulas on a known logit vector", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    // Sorted: 4 (class 3), 2 (class 0), 0.5 (class 2), −1 (class 1).
    const z = tf.tensor2d([[2, -1, 0.5, 4], [1, 5, 3, 2]]);
    const y = tf.tensor1d([0, 1], "int32");
    const t = tf.tensor1d([2, 3], "int32");
    const d = dlrLoss(z, y);
    // −(z_y − max_{i≠y} z_i)/(z_π1 − z_π3): −(2 − 4)/(4 − 0.5); −(5 − 3)/(5 − 2).
    close(await d.data(), [2 / 3.5, -2 / 3]);
    const td = targetedDlrLoss(z, y, t);
    // −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2): −(2 − 0.5)/(4 + 0.25); −(5 − 2)/(5 − 1.5).
    close(await td.data(), [-1.5 / 4.25, -3 / 3.5]);
    // Both are invariant to scaling the logits, which is why APGD-T sees through ×1e4.
    const big = tf.mul(z, 1e4) as tf.Tensor2D;
    const [db, tb] = [dlrLoss(big, y), targetedDlrLoss(big, y, t)];
    close(await db.data(), [2 / 3.5, -2 / 3]);
    close(await tb.data(), [-1.5 / 4.25, -3 / 3.5]);
    const k = [1, 2, 3, 4].map((i) => kthLargest(z, i));
    close(await k[0].data(), [4, 5]);
    close(await k[2].data(), [0.5, 2]);
    close(await k[3].data(), [-1, 1]);
    // The targeted form routes the target and true class through the objective.
    const o = attackObjective(z, t, "dlr", true, y);
    close(await o.data(), [-1.5 / 4.25, -3 / 3.5]);
    assert.throws(() => attackObjective(z, t, "dlr", true));
    tf.dispose([z, y, t, d, td, big, db, tb, o, ...k]);
  });
});

Deno.test("the DLR loss's gradient flows through the sorted logits (tfjs has no topk gradient)", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const z = tf.tensor2d([[2, -1, 0.5, 4]]);
    const y = tf.tensor1d([0], "int32");
    const g = tf.grad((v: tf.Tensor) => tf.sum(dlrLoss(v as tf.Tensor2D, y)))(z);
    // f = (z3 − z0)/(z3 − z2): ∂z0 = −1/3.5, ∂z1 = 0, ∂z2 = 2/3.5², ∂z3 = 1.5/3.5².
    close(await g.data(), [-1 / 3.5, 0, 2 / 12.25, 1.5 / 12.25]);
    // Ties divide by DLR's tiny constant, not zero: finite.
    const tie = tf.tensor2d([[1, 1, 1, 1]]);
    const l = dlrLoss(tie, y);
    assert.ok(Number.isFinite((await l.data())[0]));
    tf.dispose([z, y, g, tie, l]);
  });
});

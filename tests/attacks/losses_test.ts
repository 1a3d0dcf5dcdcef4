import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { attackObjective, crossEntropy, marginLoss } from "../../src/attacks/losses.ts";
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

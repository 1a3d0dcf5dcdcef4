import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { MomentumSgd } from "../../src/purify/sgd.ts";
import { complementLoss } from "../../src/purify/train_step.ts";
import { stamp } from "../../src/purify/trigger_reconstruction.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

Deno.test("MomentumSgd follows PyTorch's update and hands its buffer on exactly", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const v = tf.tidy(() => tf.variable(tf.tensor1d([1, -2])));
    const sgd = new MomentumSgd([v]);
    const g = tf.tensor1d([0.5, 0.25]);
    sgd.step([g], 0.1, 0.9, 0.01);
    // d = g + 0.01·θ = [0.51, 0.23]; b = d; θ = θ − 0.1·b
    assert.deepEqual(Array.from(await v.data()).map((x) => +x.toFixed(6)), [0.949, -2.023]);
    sgd.step([g], 0.1, 0.9, 0.01);
    // d = [0.5 + 0.00949, 0.25 − 0.02023]; b = 0.9·[0.51, 0.23] + d
    const b = await sgd.export();
    assert.ok(Math.abs(b[0] - (0.9 * 0.51 + 0.50949)) < 1e-6);
    assert.ok(Math.abs(b[1] - (0.9 * 0.23 + 0.22977)) < 1e-6);
    const resumed = new MomentumSgd([v], b);
    assert.deepEqual(await resumed.export(), b);
    tf.dispose([v, g]);
    sgd.dispose();
    resumed.dispose();
  });
});

Deno.test("complementLoss() is −log(1 − p_y) and stays finite when p_y rounds to 1", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const z = tf.tensor2d([[2, 0, 0], [100, 0, 0]]);
    const y = tf.tensor1d([0, 0], "int32");
    const l = complementLoss(z, y);
    const [a, b] = await l.data();
    const p = Math.exp(2) / (Math.exp(2) + 2);
    assert.ok(Math.abs(a - -Math.log(1 - p)) < 1e-5);
    assert.ok(Number.isFinite(b) && Math.abs(b - (100 - Math.log(2))) < 1e-3);
    tf.dispose([z, y, l]);
  });
});

Deno.test("stamp() mixes images with the pattern by the mask", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const x = tf.fill([1, 2, 2, 1], 0.2) as tf.Tensor4D;
    const mask = tf.tensor3d([[[10], [-10]], [[-10], [-10]]]);
    const pattern = tf.fill([2, 2, 1], 10);
    const out = tf.tidy(() => stamp(x, mask, pattern));
    const d = await out.data();
    assert.ok(Math.abs(d[0] - 1) < 1e-3, "masked pixel takes the pattern");
    assert.ok(Math.abs(d[1] - 0.2) < 1e-3, "unmasked pixel is kept");
    tf.dispose([x, mask, pattern, out]);
  });
});

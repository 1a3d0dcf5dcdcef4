/**
 * On a started webgpu backend (BACKEND=webgpu; ignored otherwise): initBackend leaves our flag
 * values in force, and setWebgpuFlags("stock") restores tfjs's, with kernels still running.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../_helpers.ts";
import { setWebgpuFlags, WEBGPU_FLAGS } from "../../src/tensor/webgpu_flags.ts";

Deno.test({
  name: "webgpu flags: initBackend applies ours; stock restores tfjs's",
  ignore: Deno.env.get("BACKEND") !== "webgpu",
  fn: async () => {
    await setupBackend();
    assert.equal(tf.getBackend(), "webgpu");
    for (const [name, flag] of Object.entries(WEBGPU_FLAGS)) {
      assert.equal(tf.env().get(name), flag.ours, name);
    }
    try {
      setWebgpuFlags("stock");
      for (const [name, flag] of Object.entries(WEBGPU_FLAGS)) {
        assert.equal(tf.env().get(name), flag.stock, name);
      }
      // A forward conv (fused program under stock, separate im2col under ours) agrees.
      const x = tf.randomUniform([2, 9, 9, 3], -1, 1, "float32", 7) as tf.Tensor4D;
      const f = tf.randomUniform([3, 3, 3, 40], -1, 1, "float32", 8) as tf.Tensor4D;
      const run = async () => {
        const y = tf.conv2d(x, f, 1, "same");
        const d = await y.data();
        y.dispose();
        return d;
      };
      const stock = await run();
      setWebgpuFlags("ours");
      const ours = await run();
      tf.dispose([x, f]);
      let maxRel = 0;
      for (let i = 0; i < ours.length; i++) {
        maxRel = Math.max(maxRel, Math.abs(ours[i] - stock[i]) / (Math.abs(stock[i]) + 1e-3));
      }
      assert.ok(maxRel < 1e-4, `fused vs im2col conv2d rel err ${maxRel}`);
    } finally {
      setWebgpuFlags("ours");
    }
  },
});

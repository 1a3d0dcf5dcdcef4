/**
 * `deno bench` of the kernels src/tensor/ replaces or adds, on the shapes of the small CNN at
 * batch 128 (DESIGN.md's workload), on the backend named by BACKEND (default wasm):
 *
 *   BACKEND=wasm deno task bench bench/kernels_bench.ts
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";

await initBackend((Deno.env.get("BACKEND") as BackendName | undefined) ?? "wasm");

const x1 = tf.randomUniform([128, 14, 14, 32]) as tf.Tensor4D;
const w2 = tf.randomUniform([3, 3, 32, 64]) as tf.Tensor4D;
const dy2 = tf.randomUniform([128, 14, 14, 64]) as tf.Tensor4D;
const p = tf.randomUniform([128, 28, 28, 32]) as tf.Tensor4D;
const a = tf.randomUniform([128, 3136]);
const g = tf.randomUniform([128, 128]);

async function run(f: () => tf.Tensor) {
  const t = f();
  await t.data();
  t.dispose();
}

Deno.bench("Conv2DBackpropFilter 128x14x14x32 -> 3x3x32x64", { group: "conv" }, async () => {
  await run(() =>
    tf.engine().runKernel("Conv2DBackpropFilter", { x: x1, dy: dy2 }, {
      strides: 1,
      pad: "same",
      dataFormat: "NHWC",
      filterShape: [3, 3, 32, 64],
    }) as tf.Tensor
  );
});
Deno.bench("Conv2DBackpropInput 128x14x14x64 -> 128x14x14x32", { group: "conv" }, async () => {
  await run(() => tf.conv2dTranspose(dy2, w2, [128, 14, 14, 32], 1, "same"));
});
Deno.bench("Conv2D forward 128x14x14x32 * 3x3x32x64", { group: "conv" }, async () => {
  await run(() => tf.conv2d(x1, w2, 1, "same"));
});
Deno.bench("MaxPoolGrad 128x28x28x32, 2x2/2", async () => {
  await run(() => tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, 2, 2, "valid").sum())(p));
});
Deno.bench("MatMul dense backward: xᵀ·dy (3136x128 · 128x128)", { group: "matmul" }, async () => {
  await run(() => tf.matMul(a, g, true, false));
});
Deno.bench("MatMul dense backward: dy·Wᵀ", { group: "matmul" }, async () => {
  await run(() => tf.matMul(g, a.transpose(), false, true));
});

const x0 = tf.randomUniform([128, 28, 28, 1]) as tf.Tensor4D;
const w1 = tf.randomUniform([3, 3, 1, 32]) as tf.Tensor4D;
const scale = tf.randomUniform([1, 1, 1, 32]);
Deno.bench("Conv2DBackpropInput 128x28x28x32 -> 128x28x28x1 (first layer)", async () => {
  await run(() => tf.conv2dTranspose(p, w1, [128, 28, 28, 1], 1, "same"));
});
Deno.bench("Conv2DBackpropFilter 128x28x28x1 -> 3x3x1x32 (first layer)", async () => {
  await run(() =>
    tf.engine().runKernel("Conv2DBackpropFilter", { x: x0, dy: p }, {
      strides: 1,
      pad: "same",
      dataFormat: "NHWC",
      filterShape: [3, 3, 1, 32],
    }) as tf.Tensor
  );
});
Deno.bench("Sum 128x28x28x32 over 0,1,2 (bias gradient)", { group: "reduce" }, async () => {
  await run(() => tf.sum(p, [0, 1, 2]));
});
Deno.bench(
  "Mean 128x28x28x32 over 0,1,2 (batch-norm statistics)",
  { group: "reduce" },
  async () => {
    await run(() => tf.mean(p, [0, 1, 2]));
  },
);
Deno.bench("Tile 1x1x1x32 -> 128x28x28x32 (batch-norm gradient)", async () => {
  await run(() => tf.tile(scale, [128, 28, 28, 1]));
});

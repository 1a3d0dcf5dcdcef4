/**
 * Our webgpu `Conv2DBackpropFilter` (src/tensor/webgpu_conv_grad.ts) against tfjs-backend-webgpu
 * 4.22's own, side by side in one run, on the small CNN's two convolution layers and a VGG-style
 * 3×3 layer, at two batch sizes; the two are interleaved rep by rep and the medians printed with
 * their ratio and the largest relative difference between them.
 *
 *   BACKEND=webgpu deno run -A bench/webgpu_kernels.ts [--batches 32,256] [--reps 5]
 *
 * On a GPU-less machine Deno's adapter is llvmpipe (software): its figures say nothing of a GPU.
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../src/tensor/backend.ts";
import { stockConfig } from "../src/tensor/stock_kernels.ts";
import { webgpuKernelConfigs } from "../src/tensor/webgpu_conv_grad.ts";

const { values: a } = parseArgs({
  options: {
    batches: { type: "string", default: "32,256" },
    reps: { type: "string", default: "5" },
  },
});
const batches = a.batches!.split(",").map(Number), reps = Number(a.reps);

const LAYERS = [
  { name: "small CNN conv1 28×28×1→32", hw: 28, cin: 1, cout: 32 },
  { name: "small CNN conv2 14×14×32→64", hw: 14, cin: 32, cout: 64 },
  { name: "VGG 16×16×128→128", hw: 16, cin: 128, cout: 128 },
];

const info = await initBackend("webgpu");
const ours = webgpuKernelConfigs[0];
const stock = stockConfig(ours.kernelName, "webgpu")!;
const use = (k: tf.KernelConfig) => {
  tf.unregisterKernel(k.kernelName, "webgpu");
  tf.registerKernel(k);
};

async function time(x: tf.Tensor4D, dy: tf.Tensor4D, fs: number[]) {
  const t0 = performance.now();
  const g = tf.engine().runKernel(ours.kernelName, { x, dy }, {
    strides: 1,
    pad: "same",
    dataFormat: "NHWC",
    filterShape: fs,
  }) as tf.Tensor;
  const v = await g.data() as Float32Array;
  g.dispose();
  return { ms: performance.now() - t0, v };
}

const median = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
console.log(`adapter: ${info.adapter}; ${reps} repeats, interleaved; medians`);
console.log(
  "| layer | batch | ours ms | stock ms | stock ÷ ours | max rel diff |\n|---|---|---|---|---|---|",
);
for (const l of LAYERS) {
  for (const n of batches) {
    const x = tf.randomUniform([n, l.hw, l.hw, l.cin], -1, 1, "float32", 1) as tf.Tensor4D;
    const dy = tf.randomUniform([n, l.hw, l.hw, l.cout], -1, 1, "float32", 2) as tf.Tensor4D;
    const fs = [3, 3, l.cin, l.cout];
    const t = { ours: [] as number[], stock: [] as number[] };
    let diff = 0;
    for (let r = 0; r <= reps; r++) {
      use(ours);
      const o = await time(x, dy, fs);
      use(stock);
      const s = await time(x, dy, fs);
      if (r === 0) { // the first pass compiles the shaders
        let scale = 0, err = 0;
        for (let i = 0; i < s.v.length; i++) scale = Math.max(scale, Math.abs(s.v[i]));
        for (let i = 0; i < s.v.length; i++) err = Math.max(err, Math.abs(o.v[i] - s.v[i]));
        diff = err / scale;
        continue;
      }
      t.ours.push(o.ms);
      t.stock.push(s.ms);
    }
    use(ours);
    const [mo, ms] = [median(t.ours), median(t.stock)];
    console.log(
      `| ${l.name} | ${n} | ${mo.toFixed(1)} | ${ms.toFixed(1)} | ${(ms / mo).toFixed(2)}× | ${
        diff.toExponential(1)
      } |`,
    );
    tf.dispose([x, dy]);
  }
}
Deno.exit(0);

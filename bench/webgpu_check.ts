/**
 * WebGPU against wasm in one process: the small CNN's logits, its input gradient (a PGD step's
 * work) and the weights after one SGD step, computed on `webgpu` and then on `wasm` from the same
 * seeded weights and inputs; prints the adapter, the largest relative differences and the time of
 * each workload on each backend. For GPU hosts:
 *
 *   deno run -A bench/webgpu_check.ts [--batch 128] [--reps 5]
 *
 * Only `await t.data()` is used: synchronous reads crash the WebGPU backend under Deno.
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { MomentumSgd } from "../src/purify/sgd.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";
import { smallCnn } from "./small_cnn.ts";

const { values: args } = parseArgs({
  options: {
    batch: { type: "string", default: "128" },
    reps: { type: "string", default: "5" },
  },
});
const batch = Number(args.batch), reps = Number(args.reps);

interface Outcome {
  logits: Float32Array;
  grad: Float32Array;
  weights: Float32Array;
  pgdStepMs: number;
  trainStepMs: number;
}

async function run(backend: BackendName): Promise<Outcome & { adapter?: string }> {
  const info = await initBackend(backend);
  const model = smallCnn();
  const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 7) as tf.Tensor4D;
  const y = tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 8) as tf.Tensor1D, 10);
  const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  const logitsT = model.predict(x) as tf.Tensor;
  const logits = await logitsT.data() as Float32Array;
  logitsT.dispose();
  const gradOf = () =>
    tf.tidy(() =>
      tf.grad((xx: tf.Tensor) =>
        tf.losses.softmaxCrossEntropy(y, model.apply(xx, { training: false }) as tf.Tensor)
      )(x)
    );
  const g0 = gradOf();
  const grad = await g0.data() as Float32Array;
  g0.dispose();
  let t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const g = gradOf();
    await g.data();
    g.dispose();
  }
  const pgdStepMs = (performance.now() - t0) / reps;
  const sgd = new MomentumSgd(vars);
  const step = async () => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
        vars,
      );
      sgd.step(vars.map((v) => grads[v.name]), 0.01, 0.9, 5e-4);
      return value;
    });
    await loss.data();
    loss.dispose();
  };
  await step();
  const flat = tf.concat(vars.map((v) => v.flatten()));
  const weights = await flat.data() as Float32Array;
  flat.dispose();
  t0 = performance.now();
  for (let i = 0; i < reps; i++) await step();
  const trainStepMs = (performance.now() - t0) / reps;
  tf.dispose([x, y]);
  sgd.dispose();
  model.dispose();
  return { logits, grad, weights, pgdStepMs, trainStepMs, adapter: info.adapter };
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let scale = 0, err = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / Math.max(scale, 1e-30);
}

let gpu: Awaited<ReturnType<typeof run>> | undefined;
try {
  gpu = await run("webgpu");
} catch (e) {
  console.log(`webgpu did not start: ${(e as Error).message}`);
}
const cpu = await run("wasm");
console.log(`adapter: ${gpu?.adapter ?? "none"}; batch ${batch}; ${reps} repeats`);
console.log("| | webgpu | wasm | webgpu ÷ wasm speed |\n|---|---|---|---|");
if (gpu) {
  console.log(
    `| input-gradient step ms | ${gpu.pgdStepMs.toFixed(1)} | ${cpu.pgdStepMs.toFixed(1)} | ${
      (cpu.pgdStepMs / gpu.pgdStepMs).toFixed(2)
    }× |`,
  );
  console.log(
    `| SGD step ms | ${gpu.trainStepMs.toFixed(1)} | ${cpu.trainStepMs.toFixed(1)} | ${
      (cpu.trainStepMs / gpu.trainStepMs).toFixed(2)
    }× |`,
  );
  console.log(
    `max relative difference webgpu vs wasm: logits ${
      maxRel(gpu.logits, cpu.logits).toExponential(2)
    }, ` +
      `input gradient ${maxRel(gpu.grad, cpu.grad).toExponential(2)}, ` +
      `weights after one SGD step ${maxRel(gpu.weights, cpu.weights).toExponential(2)}`,
  );
}
Deno.exit(0);

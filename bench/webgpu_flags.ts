/**
 * The tfjs WebGPU flags of src/tensor/webgpu_flags.ts measured side by side in one process: a PGD
 * step (input gradient + read-back) and an SGD step (weight gradients + momentum update) of the
 * small CNN, under our flag set, tfjs's stock set, and our set with one flag changed at a time.
 * Variants are interleaved rep by rep so drift on a shared machine hits all alike; the first rep
 * (shader compilation) is not counted. Prints median ms per step and the ratio to ours, and the
 * largest relative difference of each variant's input gradient from ours.
 *
 *   BACKEND=webgpu deno run -A bench/webgpu_flags.ts [--batch 32] [--reps 5]
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { MomentumSgd } from "../src/purify/sgd.ts";
import { initBackend } from "../src/tensor/backend.ts";
import { setWebgpuFlags, WEBGPU_FLAGS, type WebgpuFlagValue } from "../src/tensor/webgpu_flags.ts";
import { smallCnn } from "./small_cnn.ts";

const { values: args } = parseArgs({
  options: {
    batch: { type: "string", default: "32" },
    reps: { type: "string", default: "5" },
  },
});
const batch = Number(args.batch), reps = Number(args.reps);

interface Variant {
  label: string;
  base: "ours" | "stock";
  set?: Record<string, WebgpuFlagValue>;
}
/** Values to try against ours for the numeric flags (booleans are flipped). */
const OTHER: Record<string, WebgpuFlagValue> = {
  WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: 60,
  WEBGPU_THRESHOLD_TO_INCREASE_WORKGROUPS_FOR_MATMUL: 64,
};
/** ours, stock, then ours with one flag changed (flags left out: moot or per-shape auto). */
const VARIANTS: Variant[] = [
  { label: "ours", base: "ours" },
  { label: "stock", base: "stock" },
  ...Object.entries(WEBGPU_FLAGS).flatMap(([name, flag]): Variant[] => {
    const other = typeof flag.ours === "boolean" ? !flag.ours : OTHER[name];
    if (other === undefined) return [];
    return [{
      label: `ours, ${name.replace(/^WEBGPU_/, "")}=${other}`,
      base: "ours",
      set: { [name]: other },
    }];
  }),
];

function apply(v: Variant): void {
  setWebgpuFlags(v.base);
  for (const [name, value] of Object.entries(v.set ?? {})) tf.env().set(name, value);
}

const info = await initBackend("webgpu");
const model = smallCnn();
const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 7) as tf.Tensor4D;
const y = tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 8) as tf.Tensor1D, 10);
const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
const sgd = new MomentumSgd(vars);

async function pgdStep(): Promise<{ ms: number; grad: Float32Array }> {
  const t0 = performance.now();
  const g = tf.tidy(() =>
    tf.grad((xx: tf.Tensor) =>
      tf.losses.softmaxCrossEntropy(y, model.apply(xx, { training: false }) as tf.Tensor)
    )(x)
  );
  const grad = await g.data() as Float32Array;
  g.dispose();
  return { ms: performance.now() - t0, grad };
}

async function sgdStep(): Promise<number> {
  const t0 = performance.now();
  const loss = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
      vars,
    );
    // lr 0: the weights stay put, so every variant's PGD step sees the same model.
    sgd.step(vars.map((v) => grads[v.name]), 0, 0.9, 0);
    return value;
  });
  await loss.data();
  loss.dispose();
  return performance.now() - t0;
}

const pgd = VARIANTS.map(() => [] as number[]);
const train = VARIANTS.map(() => [] as number[]);
const grads: Float32Array[] = [];
for (let r = 0; r <= reps; r++) {
  for (let i = 0; i < VARIANTS.length; i++) {
    apply(VARIANTS[i]);
    const p = await pgdStep();
    const s = await sgdStep();
    if (r === 0) grads[i] = p.grad;
    else {
      pgd[i].push(p.ms);
      train[i].push(s);
    }
  }
}
setWebgpuFlags("ours");

const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
function maxRel(a: Float32Array, b: Float32Array): number {
  let scale = 0, worst = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}
console.log(`adapter: ${info.adapter}; small CNN, batch ${batch}, ${reps} reps (median)`);
console.log("variant | PGD step ms | ×ours | SGD step ms | ×ours | grad max rel diff vs ours");
const p0 = median(pgd[0]), s0 = median(train[0]);
for (let i = 0; i < VARIANTS.length; i++) {
  const p = median(pgd[i]), s = median(train[i]);
  console.log(
    `${VARIANTS[i].label} | ${p.toFixed(1)} | ${(p / p0).toFixed(2)} | ${s.toFixed(1)} | ${
      (s / s0).toFixed(2)
    } | ${maxRel(grads[i], grads[0]).toExponential(1)}`,
  );
}
tf.dispose([x, y]);
sgd.dispose();
model.dispose();

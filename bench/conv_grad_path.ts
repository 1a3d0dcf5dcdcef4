/**
 * What `pruneConvGradients` (src/model/conv_grad_path.ts) saves, on any backend: the lab's VGG-BN
 * network with tfjs-layers' fused convolutions against the same network pruned, interleaved rep
 * by rep in one process (first rep not counted, medians), on PGD-10 (input gradients) and an SGD
 * step (weight gradients). Prints ms per workload, the speed ratio and the largest relative
 * difference of the PGD result.
 *
 *   BACKEND=wasm deno run -A bench/conv_grad_path.ts [--width 32] [--batch 32] [--reps 5]
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { buildVggBn } from "../src/lab/vgg_bn.ts";
import { pruneConvGradients } from "../src/model/conv_grad_path.ts";
import { MomentumSgd } from "../src/purify/sgd.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";

const { values: a } = parseArgs({
  options: {
    width: { type: "string", default: "32" },
    batch: { type: "string", default: "32" },
    reps: { type: "string", default: "5" },
  },
});
const width = Number(a.width), batch = Number(a.batch), reps = Number(a.reps);
const info = await initBackend((Deno.env.get("BACKEND") as BackendName | undefined) ?? "wasm");

const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, "float32", 7) as tf.Tensor4D;
const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 8) as tf.Tensor1D, 10));
const loss = (m: tf.LayersModel, xx: tf.Tensor, training: boolean) =>
  tf.losses.softmaxCrossEntropy(y, m.apply(xx, { training }) as tf.Tensor) as tf.Scalar;

async function pgd(m: tf.LayersModel): Promise<Float32Array> {
  let adv: tf.Tensor = tf.clone(x);
  for (let s = 0; s < 10; s++) {
    const next = tf.tidy(() => {
      const g = tf.grad((xx: tf.Tensor) => loss(m, xx, false))(adv);
      return adv.add(g.sign().mul(2 / 255)).minimum(x.add(8 / 255)).maximum(x.sub(8 / 255))
        .clipByValue(0, 1);
    });
    adv.dispose();
    adv = next;
  }
  const out = await adv.data() as Float32Array;
  adv.dispose();
  return out;
}

function sgdStepper(m: tf.LayersModel) {
  const vars = m.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  const sgd = new MomentumSgd(vars);
  return {
    async step() {
      const l = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => loss(m, x, true), vars);
        sgd.step(vars.map((v) => grads[v.name]), 0.01, 0.9, 5e-4);
        return value;
      });
      await l.data();
      l.dispose();
    },
    dispose: () => sgd.dispose(),
  };
}

const models = [
  buildVggBn([32, 32, 3], 10, 1, { width }),
  buildVggBn([32, 32, 3], 10, 1, { width }),
];
pruneConvGradients(models[1]);
const steppers = models.map(sgdStepper);
const times = models.map(() => ({ pgd: [] as number[], sgd: [] as number[] }));
const results: Float32Array[] = [];
for (let r = 0; r <= reps; r++) {
  for (let i = 0; i < 2; i++) {
    let t0 = performance.now();
    const adv = await pgd(models[i]);
    const p = performance.now() - t0;
    t0 = performance.now();
    await steppers[i].step();
    const s = performance.now() - t0;
    if (r === 0) results[i] = adv;
    else times[i].pgd.push(p), times[i].sgd.push(s);
  }
}
const median = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
let diff = 0;
for (let i = 0; i < results[0].length; i++) {
  diff = Math.max(diff, Math.abs(results[0][i] - results[1][i]));
}
console.log(
  `${info.name}${
    info.adapter ? ` (${info.adapter})` : ""
  }; VGG-BN width ${width}, batch ${batch}, ` +
    `${reps} reps (median)`,
);
console.log("| workload | fused ms | pruned ms | pruned ÷ fused speed |\n|---|---|---|---|");
for (const w of ["pgd", "sgd"] as const) {
  const [f, p] = [median(times[0][w]), median(times[1][w])];
  console.log(
    `| ${w === "pgd" ? "PGD-10" : "SGD step"} | ${f.toFixed(0)} | ${p.toFixed(0)} | ${
      (f / p).toFixed(2)
    }× |`,
  );
}
console.log(`largest difference of the PGD images (first rep): ${diff.toExponential(1)}`);
steppers.forEach((s) => s.dispose());
models.forEach((m) => m.dispose());
tf.dispose([x, y]);

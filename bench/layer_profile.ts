/**
 * Where a training step and a PGD step spend their time, kernel by kernel (`tf.profile`), for the
 * small CNN and for a Functional model with the layers the benchmark CNN lacks: BatchNormalization,
 * average pooling, dropout, a residual add, global average pooling. Flags any kernel that takes
 * more than `--flag` (default 25%) of a step, so that a pathologically slow kernel shows up.
 *
 *   deno run -A bench/layer_profile.ts [--backend wasm] [--batch 128] [--top 12] [--flag 0.25]
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { MomentumSgd } from "../src/purify/sgd.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";
import { smallCnn } from "./small_cnn.ts";

const { values: args } = parseArgs({
  options: {
    backend: { type: "string", default: Deno.env.get("BACKEND") ?? "wasm" },
    batch: { type: "string", default: "128" },
    top: { type: "string", default: "12" },
    flag: { type: "string", default: "0.25" },
  },
});
const batch = Number(args.batch);

/** conv-BN-relu, avg-pool, a residual conv-BN block, dropout, global average pooling, dense. */
function functionalBn(): tf.LayersModel {
  const input = tf.input({ shape: [28, 28, 1] });
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  let h = tf.layers.conv2d({
    filters: 32,
    kernelSize: 3,
    padding: "same",
    kernelInitializer: init(1),
  })
    .apply(input) as tf.SymbolicTensor;
  h = tf.layers.batchNormalization().apply(h) as tf.SymbolicTensor;
  h = tf.layers.activation({ activation: "relu" }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.averagePooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
  let r = tf.layers.conv2d({
    filters: 32,
    kernelSize: 3,
    padding: "same",
    kernelInitializer: init(2),
  })
    .apply(h) as tf.SymbolicTensor;
  r = tf.layers.batchNormalization().apply(r) as tf.SymbolicTensor;
  r = tf.layers.activation({ activation: "relu" }).apply(r) as tf.SymbolicTensor;
  h = tf.layers.add().apply([h, r]) as tf.SymbolicTensor;
  h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.dropout({ rate: 0.25 }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 10, kernelInitializer: init(3) }).apply(
    h,
  ) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

async function profile(name: string, f: () => Promise<void>) {
  await f();
  await f();
  const reps = 3;
  const agg = new Map<string, number>();
  let total = 0;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const prof = await tf.profile(f);
    for (const k of prof.kernels) {
      const ms = await (k.kernelTimeMs as number | Promise<number>) / reps;
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      agg.set(key, (agg.get(key) ?? 0) + ms);
      total += ms;
    }
  }
  const wall = (performance.now() - t0) / reps;
  console.log(
    `\n### ${name}: ${wall.toFixed(1)} ms per step (profiled; kernels ${total.toFixed(1)} ms)`,
  );
  console.log("| ms | share | kernel [input shapes] |\n|---|---|---|");
  const byName = new Map<string, number>();
  for (const [k, v] of agg) byName.set(k.split(" ")[0], (byName.get(k.split(" ")[0]) ?? 0) + v);
  for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, Number(args.top))) {
    console.log(`| ${v.toFixed(1)} | ${(100 * v / total).toFixed(0)}% | ${k} |`);
  }
  for (const [k, v] of byName) {
    if (v / total > Number(args.flag)) {
      console.log(`**${k} takes ${(100 * v / total).toFixed(0)}% of the step**`);
    }
  }
}

const info = await initBackend(args.backend as BackendName);
console.log(
  `backend ${info.name}, batch ${batch}, load ${Deno.loadavg().map((v) => v.toFixed(2)).join(" ")}`,
);
for (
  const [label, make] of [["small CNN", smallCnn], [
    "Functional conv-BN-avgpool-residual-dropout",
    functionalBn,
  ]] as const
) {
  const model = make();
  const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 7) as tf.Tensor4D;
  const y = tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 8) as tf.Tensor1D, 10);
  const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  const sgd = new MomentumSgd(vars);
  await profile(`${label}: SGD step`, async () => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () =>
          tf.losses.softmaxCrossEntropy(
            y,
            model.apply(x, { training: true }) as tf.Tensor,
          ) as tf.Scalar,
        vars,
      );
      sgd.step(vars.map((v) => grads[v.name]), 0.01, 0.9, 5e-4);
      return value;
    });
    await loss.data();
    loss.dispose();
  });
  await profile(`${label}: one PGD step (input gradient, inference mode)`, async () => {
    const g = tf.tidy(() =>
      tf.grad((xx: tf.Tensor) =>
        tf.losses.softmaxCrossEntropy(y, model.apply(xx, { training: false }) as tf.Tensor)
      )(x)
    );
    await g.data();
    g.dispose();
  });
  tf.dispose([x, y]);
  sgd.dispose();
  model.dispose();
}

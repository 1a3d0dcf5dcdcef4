/**
 * The same workloads in PyTorch (Debian's python3-torch, the peer a user would pick) and in our
 * code, in one run, reported as ratios. Small CNN 28×28×1 conv32-pool-conv64-pool-dense128-dense10,
 * batch 128:
 *   - PGD L-inf, 10 steps (eps 8/255, step 2/255), through `src/attacks/pgd.ts`: image-steps/s;
 *   - SGD training steps (momentum 0.9): images/s.
 *
 *   deno run -A bench/side_by_side.ts [--backend wasm] [--threads 2] [--reps 5]
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { pgd } from "../src/attacks/pgd.ts";
import type { Classifier } from "../src/model/classifier.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";

const { values: args } = parseArgs({
  options: {
    backend: { type: "string", default: "wasm" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "5" },
    torch: { type: "boolean", default: true },
  },
});
const reps = Number(args.reps);

function cnn(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 32,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: 64,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: init(2),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 128, activation: "relu", kernelInitializer: init(3) }),
      tf.layers.dense({ units: 10, kernelInitializer: init(4) }),
    ],
  });
}

async function torchFigures(): Promise<Record<string, number | string> | undefined> {
  const script = new URL("./torch_workloads.py", import.meta.url).pathname;
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [script, args.threads!, String(reps)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      console.error(new TextDecoder().decode(out.stderr).slice(-500));
      return undefined;
    }
    return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
  } catch (e) {
    console.error(`PyTorch not runnable (${(e as Error).message}); apt-get install python3-torch`);
    return undefined;
  }
}

async function ours(): Promise<Record<string, number | string>> {
  const info = await initBackend(args.backend as BackendName);
  const model = cnn();
  const clf: Classifier = {
    model,
    inputShape: [28, 28, 1],
    numClasses: 10,
    logits: (x, training) => model.apply(x, { training }) as tf.Tensor2D,
  };
  const batch = 128, steps = 10;
  const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 7) as tf.Tensor4D;
  const y = tf.randomUniform([batch], 0, 10, "int32", 8) as tf.Tensor1D;
  const opts = {
    eps: 8 / 255,
    stepSize: 2 / 255,
    randomStart: false,
    earlyStop: false,
  };
  (await pgd(clf, x, y, { ...opts, steps: 2 })).adversarial.dispose();
  let t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    const res = await pgd(clf, x, y, { ...opts, steps });
    await res.adversarial.data();
    res.adversarial.dispose();
  }
  const pgdS = (performance.now() - t0) / 1000 / reps;

  const opt = tf.train.momentum(0.01, 0.9);
  const yHot = tf.oneHot(y, 10);
  const step = async () => {
    const loss = opt.minimize(
      () => tf.losses.softmaxCrossEntropy(yHot, clf.logits(x, true)) as tf.Scalar,
      true,
    )!;
    await loss.data();
    loss.dispose();
  };
  await step();
  t0 = performance.now();
  for (let r = 0; r < reps * 2; r++) await step();
  const trainS = (performance.now() - t0) / 1000 / (reps * 2);
  tf.dispose([x, y, yHot]);
  opt.dispose();
  model.dispose();
  return {
    backend: info.name,
    pgd_image_steps_per_s: batch * steps / pgdS,
    train_images_per_s: batch / trainS,
    peak_rss_mib: Deno.memoryUsage().rss / 2 ** 20,
  };
}

const peer = args.torch ? await torchFigures() : undefined;
const mine = await ours();
const fmt = (v: unknown) => typeof v === "number" ? v.toFixed(1) : String(v ?? "—");
console.log(
  `| workload | purifier (${mine.backend}) | ${
    peer?.peer ?? "pytorch"
  } (${args.threads} threads) | ratio |`,
);
console.log("|---|---|---|---|");
for (const k of ["pgd_image_steps_per_s", "train_images_per_s", "peak_rss_mib"]) {
  const ratio = peer ? (mine[k] as number) / (peer[k] as number) : undefined;
  console.log(
    `| ${k} | ${fmt(mine[k])} | ${fmt(peer?.[k])} | ${ratio ? ratio.toFixed(2) + "×" : "—"} |`,
  );
}

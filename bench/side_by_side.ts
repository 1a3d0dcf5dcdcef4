/**
 * The same workloads in PyTorch (Debian's python3-torch, the peer a user would pick) and in our
 * code, in one run, reported as ratios. Small CNN 28×28×1 conv32-pool-conv64-pool-dense128-dense10,
 * batch 128:
 *   - PGD L-inf, 10 steps (eps 8/255, step 2/255), through `src/attacks/pgd.ts`: image-steps/s;
 *   - SGD training steps (momentum 0.9, weight decay 5e-4, `src/purify/sgd.ts`): images/s.
 *
 * The CI machine is shared, so absolute figures drift with other people's load. PyTorch therefore
 * runs as long-lived servers (one per thread count, `torch_workloads.py --serve`) and every repeat
 * interleaves the contenders (ours, torch×2, torch×1, rotating the order each repeat); the table
 * reports medians and the ratio of medians, and the load average before and after.
 *
 *   deno run -A bench/side_by_side.ts [--backend wasm] [--wasm-threads 1] [--threads 2,1]
 *     [--reps 9] [--no-torch]
 *   BACKEND=webgpu deno run -A bench/side_by_side.ts --reps 1 --no-torch   # any backend name
 *
 * `TORCH_PYTHON` names another interpreter, `TORCH_DEVICE=cuda` puts PyTorch on the GPU (for
 * comparing the webgpu backend on a GPU host).
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { pgd } from "../src/attacks/pgd.ts";
import { MomentumSgd } from "../src/purify/sgd.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";
import { peakRssMiB } from "./rss.ts";
import { asClassifier, smallCnn } from "./small_cnn.ts";

const { values: args } = parseArgs({
  options: {
    backend: { type: "string", default: Deno.env.get("BACKEND") ?? "wasm" },
    threads: { type: "string", default: "2,1" },
    reps: { type: "string", default: "9" },
    "wasm-threads": { type: "string", default: Deno.env.get("WASM_THREADS") ?? "1" },
    "no-torch": { type: "boolean", default: false },
  },
});
const reps = Number(args.reps);
const BATCH = 128, STEPS = 10;

/** Seconds for one run of a workload. */
type Runner = { name: string; pgd(): Promise<number>; train(): Promise<number> };

/** A `torch_workloads.py --serve` process, driven one line at a time. */
class TorchServer implements Runner {
  readonly name: string;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  private constructor(child: Deno.ChildProcess, lines: AsyncIterator<string>, name: string) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines;
    this.name = name;
  }

  static async start(threads: number): Promise<TorchServer> {
    const script = new URL("./torch_workloads.py", import.meta.url).pathname;
    const child = new Deno.Command(Deno.env.get("TORCH_PYTHON") ?? "/usr/bin/python3", {
      args: [script, "--serve", String(threads)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines())
      [Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) throw new Error("torch_workloads.py exited before it was ready");
    const ready = JSON.parse(first.value);
    return new TorchServer(child, lines, `${ready.ready} (${threads} thr)`);
  }

  async #ask(cmd: string): Promise<Record<string, number>> {
    await this.#writer.write(new TextEncoder().encode(cmd + "\n"));
    const r = await this.#lines.next();
    if (r.done) throw new Error(`torch_workloads.py exited on '${cmd}'`);
    return JSON.parse(r.value);
  }
  async pgd() {
    return (await this.#ask("pgd")).seconds;
  }
  async train() {
    return (await this.#ask("train")).seconds;
  }
  async peakRss() {
    return (await this.#ask("rss")).peak_rss_mib;
  }
  async close() {
    await this.#writer.write(new TextEncoder().encode("quit\n"));
    await this.#writer.close();
    await this.#child.status;
  }
}

function splitLines(): TransformStream<string, string> {
  let buf = "";
  return new TransformStream({
    transform(chunk, ctl) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        ctl.enqueue(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    },
    flush(ctl) {
      if (buf) ctl.enqueue(buf);
    },
  });
}

/** Our side: the service's PGD and SGD code on the chosen backend. */
async function ours(backend: BackendName): Promise<Runner & { dispose(): void }> {
  const info = await initBackend(backend, { wasmThreads: Number(args["wasm-threads"]) });
  const model = smallCnn();
  const clf = asClassifier(model);
  const x = tf.randomUniform([BATCH, 28, 28, 1], 0, 1, "float32", 7) as tf.Tensor4D;
  const y = tf.randomUniform([BATCH], 0, 10, "int32", 8) as tf.Tensor1D;
  const opts = { eps: 8 / 255, stepSize: 2 / 255, randomStart: false, earlyStop: false };
  const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  const sgd = new MomentumSgd(vars);
  const runPgd = async (steps: number) => {
    const t0 = performance.now();
    const res = await pgd(clf, x, y, { ...opts, steps });
    await res.adversarial.data();
    res.adversarial.dispose();
    return (performance.now() - t0) / 1000;
  };
  const runTrain = async () => {
    const t0 = performance.now();
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.losses.softmaxCrossEntropy(tf.oneHot(y, 10), clf.logits(x, true))),
        vars,
      );
      sgd.step(vars.map((v) => grads[v.name]), 0.01, 0.9, 5e-4);
      return value;
    });
    await loss.data();
    loss.dispose();
    return (performance.now() - t0) / 1000;
  };
  await runPgd(2);
  await runTrain();
  return {
    name: `purifier (${info.name}${info.adapter ? `, ${info.adapter}` : ""}${
      info.wasmThreads ? `, ${info.wasmThreads} thr` : ""
    })`,
    pgd: () => runPgd(STEPS),
    train: runTrain,
    dispose() {
      tf.dispose([x, y]);
      sgd.dispose();
      model.dispose();
    },
  };
}

const median = (a: number[]) => {
  const s = [...a].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const loadBefore = Deno.loadavg();
const threadCounts = args["no-torch"] ? [] : args.threads!.split(",").map(Number);
const torch: TorchServer[] = [];
for (const t of threadCounts) {
  try {
    torch.push(await TorchServer.start(t));
  } catch (e) {
    console.error(`PyTorch not runnable (${(e as Error).message}); apt-get install python3-torch`);
    break;
  }
}
const mine = await ours(args.backend as BackendName);
const runners: Runner[] = [mine, ...torch];
const times = runners.map(() => ({ pgd: [] as number[], train: [] as number[] }));
for (let r = 0; r < reps; r++) {
  // Rotating the order keeps any one contender from always following the same neighbour.
  for (let k = 0; k < runners.length; k++) {
    const i = (r + k) % runners.length;
    times[i].pgd.push(await runners[i].pgd());
  }
  for (let k = 0; k < runners.length; k++) {
    const i = (r + k) % runners.length;
    // Two training steps per repeat: one step is short next to PGD-10.
    times[i].train.push((await runners[i].train() + await runners[i].train()) / 2);
  }
}
const loadAfter = Deno.loadavg();
const rss = [peakRssMiB(), ...await Promise.all(torch.map((t) => t.peakRss()))];
await Promise.all(torch.map((t) => t.close()));
mine.dispose();

const pgdRate = times.map((t) => BATCH * STEPS / median(t.pgd));
const trainRate = times.map((t) => BATCH / median(t.train));
const spread = (a: number[]) => {
  const s = [...a].sort((p, q) => p - q);
  return `${(BATCH / s[s.length - 1]).toFixed(0)}–${(BATCH / s[0]).toFixed(0)}`;
};
console.log(
  `load average before ${loadBefore.map((v) => v.toFixed(2)).join(" ")}, after ${
    loadAfter.map((v) => v.toFixed(2)).join(" ")
  }; ${reps} interleaved repeats, medians`,
);
const cells = (xs: string[]) => `| ${xs.join(" | ")} |`;
const ratioNames = torch.map((t) => `ratio vs ${t.name.replace(/^pytorch \S+ /, "torch ")}`);
console.log(cells(["workload", ...runners.map((r) => r.name), ...ratioNames]));
console.log(cells(["---", ...runners.map(() => "---"), ...ratioNames.map(() => "---")]));
/** Ours ÷ each peer: above 1 is faster for rates, and more memory for RSS. */
const row = (label: string, v: number[]) =>
  console.log(cells([
    label,
    ...v.map((x) => x.toFixed(1)),
    ...v.slice(1).map((x) => (v[0] / x).toFixed(2) + "×"),
  ]));
row("PGD-10 image-steps/s", pgdRate);
row("training images/s", trainRate);
row("peak RSS MiB", rss);
console.log(
  `(per-repeat training images/s range: ${times.map((t) => spread(t.train)).join(", ")})`,
);
// Threaded wasm keeps Node-style pthread workers alive; the figures are out, so end here.
Deno.exit(0);

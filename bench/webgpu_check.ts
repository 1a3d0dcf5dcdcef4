/**
 * The WebGPU check of issue 15, in one run: **ours** (our WebGPU kernels registered, our flag
 * set and `pruneConvGradients` on the model, as the service runs) against **stock** tfjs-backend-webgpu 4.22 (our WebGPU kernels
 * unregistered, tfjs's flag defaults) against **PyTorch** (bench/webgpu_check_torch.py: CUDA where
 * it exists), on two models and two workloads at two batch sizes:
 *
 * - models: the small CNN (bench/small_cnn.ts, 28×28×1) and the VGG-style batch-norm network of
 *   the lab (src/lab/vgg_bn.ts, 32×32×3, width `--vgg-width`);
 * - PGD-10: ten L∞ steps (input gradient, sign step of 2/255, projection onto the 8/255 ball and
 *   [0, 1]), model in inference mode; image-steps per second;
 * - SGD: one training step (cross-entropy, momentum 0.9, weight decay 5e-4, lr 0.01; batch norm in
 *   training mode); images per second.
 *
 * Ours and stock are interleaved repeat by repeat in the same process, so drift hits both alike;
 * the first repeat (shader compilation) is not counted and the median of the rest is reported.
 * PyTorch runs after them, in a child process (`$PYTHON`, default /usr/bin/python3), on the same
 * inputs' shapes (cuDNN autotuned).
 *
 * Also: agreement with wasm at the smallest batch (logits, input gradient, weights after one SGD
 * step, largest relative difference) for ours and stock, and a per-kernel time profile of our
 * SGD and PGD steps at the largest batch, from tfjs's profiler (GPU timestamp queries where the
 * adapter has `timestamp-query`; Deno's llvmpipe adapter has it).
 *
 *   BACKEND=webgpu deno run -A bench/webgpu_check.ts [--batches 32,256] [--reps 5]
 *     [--models cnn,vgg] [--vgg-width 64] [--torch-device auto|cuda|cpu|none]
 *     [--out out/webgpu_check.json] [--quick]
 *
 * `--quick` (defaults of batches 4,8, one repeat, VGG width 8, PyTorch on the CPU) proves the check runs on
 * a GPU-less host; its figures are llvmpipe's and say nothing about a GPU.
 * Only `await t.data()` is used: synchronous reads crash the WebGPU backend under Deno.
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { buildVggBn } from "../src/lab/vgg_bn.ts";
import { pruneConvGradients } from "../src/model/conv_grad_path.ts";
import { MomentumSgd } from "../src/purify/sgd.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";
import { registerKernels, unregisterKernels } from "../src/tensor/kernels.ts";
import { setWebgpuFlags } from "../src/tensor/webgpu_flags.ts";
import { smallCnn } from "./small_cnn.ts";

const { values: args } = parseArgs({
  options: {
    batches: { type: "string" },
    reps: { type: "string" },
    steps: { type: "string", default: "10" },
    models: { type: "string", default: "cnn,vgg" },
    "vgg-width": { type: "string" },
    "torch-device": { type: "string", default: "auto" },
    out: { type: "string", default: "out/webgpu_check.json" },
    quick: { type: "boolean", default: false },
  },
});
const quick = args.quick;
const batches = (args.batches ?? (quick ? "4,8" : "32,256")).split(",").map(Number);
const reps = Number(args.reps ?? (quick ? 1 : 5));
const steps = Number(args.steps);
const vggWidth = Number(args["vgg-width"] ?? (quick ? 8 : 64));
const torchDevice = quick && args["torch-device"] === "auto" ? "cpu" : args["torch-device"];
const models = args.models.split(",") as ModelKind[];
if (batches.some((b) => !Number.isInteger(b) || b < 1) || !(reps >= 1) || !(steps >= 1)) {
  throw new Error("--batches, --reps and --steps take positive integers");
}
for (const m of models) if (m !== "cnn" && m !== "vgg") throw new Error(`unknown model ${m}`);

type ModelKind = "cnn" | "vgg";
type Variant = "ours" | "stock";
const VARIANTS: Variant[] = ["ours", "stock"];
const EPS = 8 / 255, ALPHA = 2 / 255;

const inputShape = (m: ModelKind): [number, number, number] =>
  m === "cnn" ? [28, 28, 1] : [32, 32, 3];
const build = (m: ModelKind): tf.LayersModel =>
  m === "cnn" ? smallCnn() : buildVggBn([32, 32, 3], 10, 1, { width: vggWidth });

/** Our kernels and flags, or tfjs's stock WebGPU kernels and flags. */
function use(v: Variant): void {
  if (v === "ours") registerKernels("webgpu");
  else unregisterKernels("webgpu");
  setWebgpuFlags(v);
}

/** A model with seeded inputs and its optimiser; `dispose` frees all of it. */
class Bench {
  readonly model: tf.LayersModel;
  readonly x: tf.Tensor4D;
  readonly y: tf.Tensor2D;
  readonly vars: tf.Variable[];
  readonly sgd: MomentumSgd;
  constructor(readonly kind: ModelKind, readonly batch: number, variant: Variant) {
    this.model = build(kind);
    // As loadClassifier does for the service; stock keeps tfjs-layers' fused gradients.
    if (variant === "ours") pruneConvGradients(this.model);
    this.x = tf.randomUniform([batch, ...inputShape(kind)], 0, 1, "float32", 7) as tf.Tensor4D;
    this.y = tf.tidy(() =>
      tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 8) as tf.Tensor1D, 10) as tf.Tensor2D
    );
    this.vars = this.model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    this.sgd = new MomentumSgd(this.vars);
  }
  loss(x: tf.Tensor, training: boolean): tf.Scalar {
    return tf.losses.softmaxCrossEntropy(
      this.y,
      this.model.apply(x, { training }) as tf.Tensor,
    ) as tf.Scalar;
  }
  /** The input gradient of the loss (one PGD step's work). */
  inputGrad(x: tf.Tensor): tf.Tensor {
    return tf.grad((xx: tf.Tensor) => this.loss(xx, false))(x);
  }
  /** PGD-`steps` from the clean batch; resolves when the GPU is done (a scalar read). */
  async pgd(): Promise<void> {
    let adv: tf.Tensor = tf.clone(this.x);
    for (let s = 0; s < steps; s++) {
      const next = tf.tidy(() => {
        const g = this.inputGrad(adv);
        const stepped = adv.add(g.sign().mul(ALPHA));
        return stepped.minimum(this.x.add(EPS)).maximum(this.x.sub(EPS)).clipByValue(0, 1);
      });
      adv.dispose();
      adv = next;
    }
    const done = tf.sum(adv);
    await done.data();
    tf.dispose([done, adv]);
  }
  /** One SGD step in training mode; resolves when the GPU is done (the loss read). */
  async sgdStep(): Promise<void> {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => this.loss(this.x, true), this.vars);
      this.sgd.step(this.vars.map((v) => grads[v.name]), 0.01, 0.9, 5e-4);
      return value;
    });
    await loss.data();
    loss.dispose();
  }
  dispose(): void {
    tf.dispose([this.x, this.y]);
    this.sgd.dispose();
    this.model.dispose();
  }
}

interface Timing {
  model: ModelKind;
  batch: number;
  workload: "pgd" | "sgd";
  variant: Variant | "torch";
  medianS: number;
  perS: number;
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];

async function timeVariants(kind: ModelKind, batch: number): Promise<Timing[]> {
  // One model per variant, so both start from the same weights and momentum.
  const benches = VARIANTS.map((v) => new Bench(kind, batch, v));
  const t = VARIANTS.map(() => ({ pgd: [] as number[], sgd: [] as number[] }));
  for (let r = 0; r <= reps; r++) {
    for (let i = 0; i < VARIANTS.length; i++) {
      use(VARIANTS[i]);
      let t0 = performance.now();
      await benches[i].pgd();
      const p = (performance.now() - t0) / 1000;
      t0 = performance.now();
      await benches[i].sgdStep();
      const s = (performance.now() - t0) / 1000;
      if (r > 0) t[i].pgd.push(p), t[i].sgd.push(s);
    }
  }
  use("ours");
  benches.forEach((b) => b.dispose());
  return VARIANTS.flatMap((variant, i) =>
    (["pgd", "sgd"] as const).map((workload) => {
      const medianS = median(t[i][workload]);
      const units = workload === "pgd" ? batch * steps : batch;
      return { model: kind, batch, workload, variant, medianS, perS: units / medianS };
    })
  );
}

interface Outputs {
  logits: Float32Array;
  grad: Float32Array;
  weights: Float32Array;
}
async function outputs(kind: ModelKind, batch: number, variant: Variant): Promise<Outputs> {
  const b = new Bench(kind, batch, variant);
  const l = b.model.predict(b.x) as tf.Tensor;
  const g = b.inputGrad(b.x);
  const [logits, grad] = await Promise.all([l.data(), g.data()]) as Float32Array[];
  tf.dispose([l, g]);
  await b.sgdStep();
  const flat = tf.concat(b.vars.map((v) => v.flatten()));
  const weights = await flat.data() as Float32Array;
  flat.dispose();
  b.dispose();
  return { logits, grad, weights };
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let scale = 0, err = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / Math.max(scale, 1e-30);
}

interface KernelRow {
  kernel: string;
  count: number;
  ms: number;
  share: number;
}
/** Our step's kernels by total GPU time (timestamp queries), largest first. */
async function profile(kind: ModelKind, batch: number, workload: "pgd" | "sgd") {
  use("ours");
  const b = new Bench(kind, batch, "ours");
  await (workload === "pgd" ? b.pgd() : b.sgdStep()); // compile first
  const info = await tf.profile(async () => {
    await (workload === "pgd" ? b.pgd() : b.sgdStep());
    return tf.scalar(0);
  });
  const rows = new Map<string, KernelRow>();
  let total = 0;
  for (const k of info.kernels) {
    const t = await k.kernelTimeMs;
    const ms = typeof t === "number" ? t : 0;
    const row = rows.get(k.name) ?? { kernel: k.name, count: 0, ms: 0, share: 0 };
    row.count++, row.ms += ms, total += ms;
    rows.set(k.name, row);
  }
  b.dispose();
  const out = [...rows.values()].sort((p, q) => q.ms - p.ms);
  for (const r of out) r.share = total > 0 ? r.ms / total : 0;
  return { model: kind, batch, workload, totalKernelMs: total, kernels: out };
}

interface TorchReply {
  device?: string;
  torch?: string;
  cuda_name?: string | null;
  skipped?: string;
  error?: string;
  results?: { model: ModelKind; batch: number; workload: "pgd" | "sgd"; median_s: number }[];
}
async function runTorch(): Promise<TorchReply> {
  if (torchDevice === "none") return { skipped: "--torch-device none" };
  const script = new URL("./webgpu_check_torch.py", import.meta.url).pathname;
  try {
    const out = await new Deno.Command(Deno.env.get("PYTHON") ?? "/usr/bin/python3", {
      args: [
        script,
        "--device",
        torchDevice,
        "--batches",
        batches.join(","),
        "--reps",
        String(reps),
        "--steps",
        String(steps),
        "--vgg-width",
        String(vggWidth),
        "--models",
        models.join(","),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!text) return { error: new TextDecoder().decode(out.stderr).trim().slice(-500) };
    return JSON.parse(text.split("\n").at(-1)!) as TorchReply;
  } catch (e) {
    return { error: (e as Error).message };
  }
}

// ---- the run ----
const info = await initBackend("webgpu");
const gpuName = info.adapter ?? "unknown";
console.log(
  `adapter: ${gpuName}; batches ${batches.join(", ")}; ${reps} timed repeats; ` +
    `PGD-${steps}; VGG width ${vggWidth}`,
);
const timings: Timing[] = [];
for (const m of models) for (const b of batches) timings.push(...await timeVariants(m, b));
const profiles = [];
for (const m of models) {
  for (const w of ["sgd", "pgd"] as const) profiles.push(await profile(m, Math.max(...batches), w));
}
const small = Math.min(...batches);
const gpuOut: Record<string, Outputs> = {};
for (const v of VARIANTS) {
  use(v);
  for (const m of models) gpuOut[`${v} ${m}`] = await outputs(m, small, v);
}
use("ours");
await initBackend("wasm" as BackendName);
const agreement = [];
for (const m of models) {
  const ref = await outputs(m, small, "stock");
  for (const v of VARIANTS) {
    const o = gpuOut[`${v} ${m}`];
    agreement.push({
      model: m,
      variant: v,
      batch: small,
      logits: maxRel(o.logits, ref.logits),
      inputGrad: maxRel(o.grad, ref.grad),
      weightsAfterStep: maxRel(o.weights, ref.weights),
    });
  }
}
const torch = await runTorch();
for (const r of torch.results ?? []) {
  const units = r.workload === "pgd" ? r.batch * steps : r.batch;
  timings.push({ ...r, variant: "torch", medianS: r.median_s, perS: units / r.median_s });
}
const torchLabel = torch.results
  ? `PyTorch ${torch.torch} ${torch.device}${torch.cuda_name ? ` (${torch.cuda_name})` : ""}`
  : `PyTorch: ${torch.skipped ?? torch.error}`;

// ---- the report ----
const find = (m: ModelKind, b: number, w: string, v: string) =>
  timings.find((t) => t.model === m && t.batch === b && t.workload === w && t.variant === v);
const f = (x?: number) => (x === undefined ? "—" : x >= 100 ? x.toFixed(0) : x.toPrecision(3));
const ratio = (a?: Timing, b?: Timing) => (a && b ? `${(a.perS / b.perS).toFixed(2)}×` : "—");
console.log(`\n${torchLabel}\n`);
console.log(
  "| model | batch | workload | ours /s | stock /s | PyTorch /s | ours ÷ stock | ours ÷ PyTorch " +
    "| stock ÷ PyTorch |\n|---|---|---|---|---|---|---|---|---|",
);
for (const m of models) {
  for (const b of batches) {
    for (const w of ["pgd", "sgd"]) {
      const [o, s, p] = ["ours", "stock", "torch"].map((v) => find(m, b, w, v));
      console.log(
        `| ${m} | ${b} | ${w === "pgd" ? `PGD-${steps} image-steps` : "SGD images"} | ${
          f(o?.perS)
        } | ${f(s?.perS)} | ${f(p?.perS)} | ${ratio(o, s)} | ${ratio(o, p)} | ${ratio(s, p)} |`,
      );
    }
  }
}
console.log(`\nagreement with wasm at batch ${small} (largest relative difference)\n`);
console.log("| model | variant | logits | input gradient | weights after one SGD step |");
console.log("|---|---|---|---|---|");
for (const a of agreement) {
  console.log(
    `| ${a.model} | ${a.variant} | ${a.logits.toExponential(1)} | ${
      a.inputGrad.toExponential(1)
    } | ${a.weightsAfterStep.toExponential(1)} |`,
  );
}
for (const p of profiles) {
  console.log(
    `\nour ${p.workload.toUpperCase()} step, ${p.model}, batch ${p.batch}: ${
      p.totalKernelMs.toFixed(1)
    } ms of kernel time\n\n| kernel | calls | ms | share |\n|---|---|---|---|`,
  );
  for (const k of p.kernels.slice(0, 12)) {
    console.log(
      `| ${k.kernel} | ${k.count} | ${k.ms.toFixed(2)} | ${(100 * k.share).toFixed(1)}% |`,
    );
  }
}
const report = {
  adapter: gpuName,
  batches,
  reps,
  steps,
  vggWidth,
  torch: { ...torch, results: undefined },
  timings,
  agreement,
  profiles,
};
await Deno.mkdir(new URL(".", `file://${Deno.cwd()}/${args.out}`), { recursive: true });
await Deno.writeTextFile(args.out, JSON.stringify(report, null, 1));
console.log(`\nJSON: ${args.out}`);
Deno.exit(0);

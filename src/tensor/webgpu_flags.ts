/**
 * The tfjs-backend-webgpu 4.22 flags the service sets deliberately before the webgpu backend
 * starts: for each, our value, tfjs's default, where tfjs reads it and why we chose ours.
 * `setWebgpuFlags("stock")` restores tfjs's defaults (the "stock tfjs WebGPU" side of
 * bench/webgpu_check.ts); `setWebgpuFlags("ours")` is what {@link initBackend} applies.
 *
 * The flags are registered when `@tensorflow/tfjs-backend-webgpu` is imported, so they can be set
 * (and read) under any backend; they only change what the webgpu backend does.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";

export type WebgpuFlagValue = boolean | number;

export interface WebgpuFlag {
  /** The value the service runs with. */
  ours: WebgpuFlagValue;
  /** tfjs-backend-webgpu 4.22's registered default (dist/flags_webgpu.js). */
  stock: WebgpuFlagValue;
  /** Why ours, and whether it rests on an llvmpipe measurement or on reasoning about a GPU. */
  reason: string;
}

/** Every tfjs WebGPU flag we decide, with both values and the reason. */
export const WEBGPU_FLAGS: Readonly<Record<string, WebgpuFlag>> = Object.freeze({
  WEBGPU_CPU_FORWARD: {
    ours: false,
    stock: true,
    reason: "backend_webgpu.js shouldExecuteOnCPU: an op whose inputs all still live on the CPU " +
      "(not yet uploaded) and are under the hand-off size runs on the CPU backend instead, and " +
      "its output stays CPU-side to be uploaded by the next GPU op. Our hot loops make such " +
      "tensors every step (scalars for step sizes, one-hot labels, small clip bounds), so " +
      "with the forward on, each step interleaves CPU kernels with the GPU queue. Off: " +
      "everything runs on one device in submission order. Reasoning about a real GPU " +
      "(a dispatch costs microseconds there); on llvmpipe the two measure alike (within " +
      "the runs' ±7% noise).",
  },
  WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD: {
    ours: 1000,
    stock: 1000,
    reason: "Left at tfjs's value and moot: backend_webgpu.js copies it into a module constant " +
      "when the package is imported (before any flag can be set from here), and with " +
      "WEBGPU_CPU_FORWARD off the hand-off never happens.",
  },
  WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE: {
    ours: true,
    stock: true,
    reason: "kernels/Conv2DBackpropInput.js: true selects Conv2DDerInputProgram (one thread per " +
      "input element looping over the filter window), false the matrix-product " +
      "Conv2DDerInputMMProgram. Kept true on a measurement: with false the small CNN's PGD " +
      "step took 1.6-1.9x as long on llvmpipe (bench/webgpu_flags.ts, batch 32, two runs), " +
      "because the first layer's input gradient has one output channel, which the MM form " +
      "tiles 32 wide; the SGD step does not compute that gradient and measured alike. Where " +
      "the project registers its own webgpu Conv2DBackpropInput (src/tensor, " +
      "webgpuKernelConfigs) this flag is moot for the shapes that kernel takes.",
  },
  WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: {
    ours: 15,
    stock: 15,
    reason: "backend_webgpu.js: dispatches per command-buffer submit. Left at tfjs's value: " +
      "every read-back flushes the queue anyway, and a larger batch only delays the GPU " +
      "starting work; no llvmpipe measurement distinguishes it, so the GPU run decides.",
  },
  WEBGPU_MATMUL_PROGRAM_TYPE: {
    ours: -1,
    stock: -1,
    reason: "kernels/BatchMatMul_impl.js: -1 lets tfjs pick per shape (reduce / split-K / small " +
      "output / packed 32x32 tiles). Our matrices range from 10-wide logits to im2col " +
      "products with a huge inner dimension; no single fixed program suits all, so auto.",
  },
  WEBGPU_CONV_SEPARATE_IM2COL_SHADER: {
    ours: true,
    stock: false,
    reason: "kernels/Conv2D_impl.js: true runs every forward conv as an explicit im2col pass " +
      "then a matrix product (tfjs does so itself only when the output has few 32x32 " +
      "workgroups). Measured on llvmpipe (bench/webgpu_flags.ts, batch 32): the fused program " +
      "took 1.3-1.6x as long on the PGD step and 1.26-1.3x on the SGD step. Costs a transient im2col buffer " +
      "(batch*outH*outW*kH*kW*inC floats, ~230 MB for the small CNN's second conv at batch " +
      "1024), which a GPU's memory holds easily. Rests on llvmpipe, whose cores behave like " +
      "a CPU's; the GPU run of bench/webgpu_flags.ts must confirm it.",
  },
  WEBGPU_THRESHOLD_TO_INCREASE_WORKGROUPS_FOR_MATMUL: {
    ours: -1,
    stock: -1,
    reason: "BatchMatMul_impl.js / Conv2D_impl.js: -1 uses the backend's per-adapter value " +
      "(8, or 16 on Intel gen 12+) for when to switch to split-K / small-tile programs. " +
      "A hand-set number would be tuned to one GPU; left to tfjs's adapter heuristic.",
  },
});

/** Sets every flag in {@link WEBGPU_FLAGS} to our value or to tfjs's default. */
export function setWebgpuFlags(which: "ours" | "stock"): void {
  for (const [name, flag] of Object.entries(WEBGPU_FLAGS)) {
    tf.env().set(name, which === "ours" ? flag.ours : flag.stock);
  }
}

/** The current value of each flag in {@link WEBGPU_FLAGS} (for /readyz-style reports, tests). */
export function currentWebgpuFlags(): Record<string, WebgpuFlagValue> {
  const out: Record<string, WebgpuFlagValue> = {};
  for (const name of Object.keys(WEBGPU_FLAGS)) {
    out[name] = tf.env().get(name) as WebgpuFlagValue;
  }
  return out;
}

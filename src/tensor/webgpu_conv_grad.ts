/**
 * `Conv2DBackpropFilter` for the webgpu backend: the filter gradient as one tiled matrix product
 * over the batch and output positions, `dW[K, cout] = Σ_m patch[m, K] · dy[m, cout]` with
 * `K = fh·fw·cin` (the filter's own `[fh, fw, cin, cout]` order) and `m` over `M = n·oh·ow`, run by
 * {@link ConvGemmProgram} with the patches read straight from `x` (implicit im2col: padding and
 * strides applied in the read, no columns tensor).
 *
 * tfjs-backend-webgpu 4.22's own program runs one thread per filter weight, each looping serially
 * over `n·oh·ow`: a 3×3×1×32 layer launches a handful of workgroups on a GPU with thousands of
 * cores. Here the output is small and the inner dimension huge, so the product is split along `M`
 * (split-K): {@link splitCount} chunks, each a workgroup layer writing partial sums, added up by
 * {@link SplitSumProgram}.
 *
 * NHWC with unit dilations only (what tfjs's conv2d gradient sends); anything else goes to the
 * stock kernel.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { FilterAttrs } from "./conv_grad_kernels.ts";
import { stockKernel, stockSetup } from "./stock_kernels.ts";
import {
  ConvGemmProgram,
  gemmTiles,
  SplitSumProgram,
  type WebgpuBackendLike,
} from "./webgpu_conv_gemm.ts";

/** Workgroups a split product aims for: enough to fill a large GPU (an H200 has 132 SMs). */
const TARGET_WORKGROUPS = 1024;
/** Fewest inner elements one split sums, so that each workgroup's staging is worth its launch. */
const MIN_CHUNK = 256;

/**
 * Splits of the inner dimension for an output of `tiles` workgroups: enough for
 * {@link TARGET_WORKGROUPS} in all, no chunk under {@link MIN_CHUNK}, at most `maxSplits`.
 */
export function splitCount(inner: number, tiles: number, maxSplits = 65535): number {
  const want = Math.ceil(TARGET_WORKGROUPS / tiles);
  const most = Math.max(1, Math.floor(inner / MIN_CHUNK));
  return Math.max(1, Math.min(want, most, maxSplits));
}

const READS = `
fn readA(row : i32, inner : i32) -> f32 {
  // row = (r·fw + s)·cin + c; inner = (b·oh + i)·ow + j.
  let cin = uniforms.xShape.w;
  let c = row % cin;
  let rs = row / cin;
  let s = rs % uniforms.filterW;
  let r = rs / uniforms.filterW;
  let ow = uniforms.dyShape.z;
  let oh = uniforms.dyShape.y;
  let j = inner % ow;
  let bi = inner / ow;
  let i = bi % oh;
  let b = bi / oh;
  let y = i * uniforms.strideH + r - uniforms.padTop;
  let x0 = j * uniforms.strideW + s - uniforms.padLeft;
  if (y < 0 || y >= uniforms.xShape.y || x0 < 0 || x0 >= uniforms.xShape.z) { return 0.0; }
  return x[((b * uniforms.xShape.y + y) * uniforms.xShape.z + x0) * cin + c];
}

fn readB(inner : i32, col : i32) -> f32 {
  return dy[inner * uniforms.dyShape.w + col];
}
`;

function conv2DBackpropFilter(
  args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as FilterAttrs;
  if (attrs.dataFormat !== "NHWC" || x.dtype !== "float32" || dy.dtype !== "float32") {
    return stockKernel(tf.Conv2DBackpropFilter, "webgpu")(args) as tf.TensorInfo;
  }
  const backend = args.backend as unknown as WebgpuBackendLike;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const [fh, fw, cin, cout] = attrs.filterShape;
  const rows = fh * fw * cin, cols = cout;
  const inner = info.batchSize * info.outHeight * info.outWidth;
  const tiles = gemmTiles(rows, cols);
  const workgroups = Math.ceil(rows / (tiles.wr * tiles.rr)) *
    Math.ceil(cols / (tiles.wc * tiles.rc));
  let splits = splitCount(
    inner,
    workgroups,
    backend.device.limits.maxComputeWorkgroupsPerDimension,
  );
  const chunk = Math.ceil(Math.ceil(inner / splits) / tiles.ti) * tiles.ti;
  splits = Math.ceil(inner / chunk);
  const program = new ConvGemmProgram(
    {
      name: "filterGrad",
      variableNames: ["x", "dy"],
      uniforms: "padTop : i32, padLeft : i32, strideH : i32, strideW : i32, filterW : i32,",
      reads: READS,
      aFast: cin >= 4 ? "row" : "inner",
      bFast: "col",
    },
    [splits, rows, cols],
    rows,
    cols,
    splits,
    tiles,
  );
  const int = (v: number) => ({ type: "int32" as const, data: [v] });
  const partials = backend.runWebGPUProgram(program, [x, dy], "float32", [
    int(rows),
    int(cols),
    int(inner),
    int(chunk),
    int(info.padInfo.top),
    int(info.padInfo.left),
    int(info.strideHeight),
    int(info.strideWidth),
    int(fw),
  ]);
  const out = backend.runWebGPUProgram(
    new SplitSumProgram(attrs.filterShape),
    [partials],
    "float32",
    [int(splits)],
  );
  backend.disposeData(partials.dataId);
  return out;
}

/** Our webgpu kernels, registered by `kernels.ts`. */
export const webgpuKernelConfigs: readonly tf.KernelConfig[] = [{
  kernelName: tf.Conv2DBackpropFilter,
  backendName: "webgpu",
  kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc,
  setupFunc: stockSetup(tf.Conv2DBackpropFilter, "webgpu"),
}];

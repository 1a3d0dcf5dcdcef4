/**
 * Fast convolution gradient kernels (`Conv2DBackpropFilter`, `Conv2DBackpropInput`) for the wasm
 * and cpu backends.
 *
 * tfjs-backend-wasm ships no `Conv2DBackpropFilter`, so any training step of a model with a
 * `conv2d` layer throws there; tfjs-backend-cpu has one, but it is a naive 7-deep loop that made a
 * single SGD step of a small CNN take about a minute (DESIGN.md). Both are replaced by the same
 * scheme: lay out the input patches transposed (im2col, `[K, M]` with `K = fh·fw·cin` and
 * `M = n·outH·outW`) and hand the contraction over `M` to the backend's own `BatchMatMul`
 * (XNNPACK on wasm), `dW[K, cout] = cols[K, M] · dy[M, cout]`.
 *
 * The transposed layout is chosen because the wasm `BatchMatMul` takes its fast XNNPACK path only
 * without `transposeA`.
 *
 * The input gradient is the mirror image (col2im): `cols[M, K] = dy[M, cout] · W[K, cout]ᵀ`, then
 * each column is scatter-added back to the input position it was read from. The stock wasm kernel
 * is a direct loop that took 411 ms of a 880 ms training step on the CI machine's small CNN.
 */
import * as tf from "@tensorflow/tfjs";
import type { TensorInfo } from "./tensor_info.ts";

interface KernelBackend {
  // wasm
  makeOutput?(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap?(info: TensorInfo): Float32Array;
  // cpu
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: Float32Array): TensorInfo;
  readSync(dataId: object): Float32Array;
  disposeData(dataId: object): void;
}

/** `Conv2DBackpropFilter`'s attributes, as tfjs passes them to every backend. */
export interface FilterAttrs {
  strides: number | [number, number];
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
  filterShape: [number, number, number, number];
}

function readFloats(backend: KernelBackend, t: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap ? backend.typedArrayFromHeap(t) : backend.readSync(t.dataId);
}

function writeFloats(backend: KernelBackend, shape: number[], values: Float32Array): TensorInfo {
  if (backend.makeOutput && backend.typedArrayFromHeap) {
    const out = backend.makeOutput(shape, "float32");
    backend.typedArrayFromHeap(out).set(values);
    return out;
  }
  return backend.makeTensorInfo!(shape, "float32", values);
}

/**
 * Fills `cols` (row-major `[K, M]`) with the transposed im2col of NHWC `x`. With several input
 * channels the channel loop is innermost, so that `x` is read in order and only `cin` rows of
 * `cols` are written at a time (measured 1.4x faster for the small CNN's second layer); with few,
 * each row of `cols` is written in one sweep (1.5x faster for its first layer, cin = 1).
 */
export function im2colTransposed(
  x: Float32Array,
  cols: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  if (info.inChannels < 4) {
    im2colTransposedByRow(x, cols, info);
    return;
  }
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: cin } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  const m = n * oh * ow;
  for (let r = 0; r < fh; r++) {
    for (let s = 0; s < fw; s++) {
      const rowBase = (r * fw + s) * cin * m;
      let m0 = 0;
      for (let b = 0; b < n; b++) {
        const xb = b * h * w * cin;
        for (let i = 0; i < oh; i++, m0 += ow) {
          const y = i * sh + r - top;
          if (y < 0 || y >= h) {
            for (let c = 0; c < cin; c++) {
              const d = rowBase + c * m + m0;
              cols.fill(0, d, d + ow);
            }
            continue;
          }
          const xr = xb + y * w * cin;
          for (let q = 0; q < ow; q++) {
            const xx = q * sw + s - left;
            const d = rowBase + m0 + q;
            if (xx < 0 || xx >= w) {
              for (let c = 0; c < cin; c++) cols[d + c * m] = 0;
              continue;
            }
            const src = xr + xx * cin;
            for (let c = 0; c < cin; c++) cols[d + c * m] = x[src + c];
          }
        }
      }
    }
  }
}

/** {@link im2colTransposed} one row of `cols` at a time (reads `x` with stride `cin`). */
function im2colTransposedByRow(
  x: Float32Array,
  cols: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: cin } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  const m = n * oh * ow;
  for (let r = 0; r < fh; r++) {
    for (let s = 0; s < fw; s++) {
      for (let c = 0; c < cin; c++) {
        let j = ((r * fw + s) * cin + c) * m;
        for (let b = 0; b < n; b++) {
          const xb = b * h * w * cin;
          for (let i = 0; i < oh; i++) {
            const y = i * sh + r - top;
            if (y < 0 || y >= h) {
              cols.fill(0, j, j + ow);
              j += ow;
              continue;
            }
            const xr = xb + y * w * cin + c;
            for (let q = 0; q < ow; q++, j++) {
              const xx = q * sw + s - left;
              cols[j] = xx >= 0 && xx < w ? x[xr + xx * cin] : 0;
            }
          }
        }
      }
    }
  }
}

function conv2DBackpropFilter(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): TensorInfo {
  const backend = args.backend as KernelBackend;
  const x = args.inputs.x as unknown as TensorInfo;
  const dy = args.inputs.dy as unknown as TensorInfo;
  const attrs = args.attrs as unknown as FilterAttrs;
  if (attrs.dataFormat !== "NHWC") {
    throw new Error("Conv2DBackpropFilter supports NHWC only");
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    "channelsLast",
  );
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const m = info.batchSize * info.outHeight * info.outWidth;
  const cout = info.outChannels;
  const matMul = tf.getKernel("BatchMatMul", tf.getBackend())!.kernelFunc;

  let cols: TensorInfo;
  if (backend.makeOutput && backend.typedArrayFromHeap) {
    cols = backend.makeOutput([1, k, m], "float32");
    // Views are taken after the allocation: growing the wasm heap detaches older views.
    im2colTransposed(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(cols), info);
  } else {
    const buf = new Float32Array(k * m);
    im2colTransposed(backend.readSync(x.dataId), buf, info);
    cols = backend.makeTensorInfo!([1, k, m], "float32", buf);
  }
  const dy3 = { dataId: dy.dataId, shape: [1, m, cout], dtype: dy.dtype };
  const out = matMul({
    inputs: { a: cols, b: dy3 } as unknown as tf.NamedTensorInfoMap,
    backend: args.backend as tf.KernelBackend,
    attrs: { transposeA: false, transposeB: false },
  }) as TensorInfo;
  backend.disposeData(cols.dataId);
  out.shape = [...attrs.filterShape];
  return out;
}

/** Scatter-adds row-major `cols` (`[M, K]`) back into NHWC `dx` (which must start zeroed). */
export function col2imAdd(
  cols: Float32Array,
  dx: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: cin } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  let j = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * w * cin;
    for (let i = 0; i < oh; i++) {
      for (let q = 0; q < ow; q++) {
        for (let r = 0; r < fh; r++) {
          const y = i * sh + r - top;
          for (let s = 0; s < fw; s++, j += cin) {
            const xx = q * sw + s - left;
            if (y < 0 || y >= h || xx < 0 || xx >= w) continue;
            const o = xb + (y * w + xx) * cin;
            for (let c = 0; c < cin; c++) dx[o + c] += cols[j + c];
          }
        }
      }
    }
  }
}

/**
 * For stride 1 the input gradient is itself a convolution: of `dy` with the filter rotated 180°
 * and its channel axes swapped, padded by `fh-1-top` above and `h-oh+top` below (likewise for
 * the width). That runs on the backend's forward Conv2D (XNNPACK on wasm), measured 2.4x faster
 * than col2im for the small CNN's second layer. Returns undefined when the shortcut does not apply.
 */
function inputGradByConv(
  args: { backend: unknown },
  info: tf.backend_util.Conv2DInfo,
  dy: TensorInfo,
  filter: TensorInfo,
): TensorInfo | undefined {
  const backend = args.backend as KernelBackend;
  const { filterHeight: fh, filterWidth: fw, inChannels: cin, outChannels: cout } = info;
  if (info.strideHeight !== 1 || info.strideWidth !== 1) return undefined;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  const pt = fh - 1 - info.padInfo.top, pb = info.inHeight - info.outHeight + info.padInfo.top;
  const pl = fw - 1 - info.padInfo.left, pr = info.inWidth - info.outWidth + info.padInfo.left;
  if (Math.min(pt, pb, pl, pr) < 0) return undefined;
  const w = readFloats(backend, filter);
  const flipped = new Float32Array(w.length);
  for (let r = 0; r < fh; r++) {
    for (let s = 0; s < fw; s++) {
      const src = ((fh - 1 - r) * fw + (fw - 1 - s)) * cin * cout;
      const dst = (r * fw + s) * cout * cin;
      for (let ci = 0; ci < cin; ci++) {
        for (let co = 0; co < cout; co++) flipped[dst + co * cin + ci] = w[src + ci * cout + co];
      }
    }
  }
  const wInfo = writeFloats(backend, [fh, fw, cout, cin], flipped);
  const conv = tf.getKernel("Conv2D", tf.getBackend())!.kernelFunc;
  const out = conv({
    inputs: { x: dy, filter: wInfo } as unknown as tf.NamedTensorInfoMap,
    backend: args.backend as tf.KernelBackend,
    attrs: {
      strides: 1,
      dilations: 1,
      pad: [[0, 0], [pt, pb], [pl, pr], [0, 0]],
      dataFormat: "NHWC",
    } as unknown as tf.NamedAttrMap,
  }) as TensorInfo;
  backend.disposeData(wInfo.dataId);
  return out;
}

/** Below this many input channels the input gradient takes the matMul + col2im path. */
const MIN_CHANNELS_FOR_CONV_INPUT_GRAD = 4;

interface InputAttrs {
  inputShape: [number, number, number, number];
  strides: number | [number, number];
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
}

function conv2DBackpropInput(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): TensorInfo {
  const backend = args.backend as KernelBackend;
  const dy = args.inputs.dy as unknown as TensorInfo;
  const filter = args.inputs.filter as unknown as TensorInfo;
  const attrs = args.attrs as unknown as InputAttrs;
  if (attrs.dataFormat !== "NHWC") {
    throw new Error("Conv2DBackpropInput supports NHWC only");
  }
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    "channelsLast",
  );
  // With few input channels the rotated-filter convolution has few output channels, which
  // XNNPACK handles poorly (cin = 1: measured 2x slower than the matMul + col2im below).
  const direct = backend.makeOutput && info.inChannels >= MIN_CHANNELS_FOR_CONV_INPUT_GRAD
    ? inputGradByConv(args, info, dy, filter)
    : undefined;
  if (direct) return direct;
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const m = info.batchSize * info.outHeight * info.outWidth;
  const cout = info.outChannels;
  const matMul = tf.getKernel("BatchMatMul", tf.getBackend())!.kernelFunc;
  // The filter is small; transposing it here keeps the large product on the fast no-transpose path
  // (measured: 79 ms instead of 607 ms for the CNN's second layer at batch 128).
  const wt = new Float32Array(k * cout);
  const w = readFloats(backend, filter);
  for (let i = 0; i < k; i++) {
    for (let o = 0; o < cout; o++) wt[o * k + i] = w[i * cout + o];
  }
  const wtInfo = writeFloats(backend, [1, cout, k], wt);
  const cols = matMul({
    inputs: {
      a: { dataId: dy.dataId, shape: [1, m, cout], dtype: dy.dtype },
      b: wtInfo,
    } as unknown as tf.NamedTensorInfoMap,
    backend: args.backend as tf.KernelBackend,
    attrs: { transposeA: false, transposeB: false },
  }) as TensorInfo;
  backend.disposeData(wtInfo.dataId);
  const size = attrs.inputShape.reduce((a, b) => a * b, 1);
  let out: TensorInfo;
  if (backend.makeOutput && backend.typedArrayFromHeap) {
    out = backend.makeOutput([...attrs.inputShape], "float32");
    const dx = backend.typedArrayFromHeap(out);
    dx.fill(0);
    col2imAdd(backend.typedArrayFromHeap(cols), dx, info);
  } else {
    const dx = new Float32Array(size);
    col2imAdd(backend.readSync(cols.dataId), dx, info);
    out = backend.makeTensorInfo!([...attrs.inputShape], "float32", dx);
  }
  backend.disposeData(cols.dataId);
  return out;
}

/** Both kernels for the wasm and cpu backends, replacing theirs. */
export const convGradKernelConfigs: tf.KernelConfig[] = (["wasm", "cpu"] as const).flatMap((
  backendName,
) => [
  {
    kernelName: "Conv2DBackpropFilter",
    backendName,
    kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc,
  },
  {
    kernelName: "Conv2DBackpropInput",
    backendName,
    kernelFunc: conv2DBackpropInput as unknown as tf.KernelFunc,
  },
]);

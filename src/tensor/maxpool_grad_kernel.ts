/**
 * A `MaxPoolGrad` kernel for the wasm backend that routes each output's gradient to the first
 * maximum of its window (row-major order, as tfjs's cpu backend does). The stock wasm kernel
 * took ~90 ms of a ~350 ms training step of the small CNN on the CI machine.
 */
import * as tf from "@tensorflow/tfjs";
import type { TensorInfo, WasmHeap } from "./tensor_info.ts";

/**
 * The common 2×2, stride-2, unpadded pooling: windows are disjoint, so each gradient is written
 * (not added) to its window's first maximum, with the channel loop innermost and no per-window
 * scratch arrays.
 */
function maxPoolGrad2x2(
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c } = info;
  const { outHeight: oh, outWidth: ow } = info;
  const row = w * c;
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * row;
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++, o += c) {
        const p00 = xb + 2 * i * row + 2 * j * c, p01 = p00 + c, p10 = p00 + row;
        const p11 = p10 + c;
        // Selects rather than branches: the comparisons are unpredictable on real activations.
        for (let k = 0; k < c; k++) {
          let v = x[p00 + k], off = 0;
          const a1 = x[p01 + k], c1 = a1 > v;
          v = c1 ? a1 : v;
          off = c1 ? c : off;
          const a2 = x[p10 + k], c2 = a2 > v;
          v = c2 ? a2 : v;
          off = c2 ? row : off;
          off = x[p11 + k] > v ? row + c : off;
          dx[p00 + k + off] = dy[o + k];
        }
      }
    }
  }
}

/** Scatter `dy` to the argmax of each pooling window of NHWC `x`; `dx` must start zeroed. */
export function maxPoolGradInto(
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c } = info;
  const { outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const { effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  if (
    fh === 2 && fw === 2 && sh === 2 && sw === 2 && top === 0 && left === 0 &&
    2 * oh <= h && 2 * ow <= w
  ) {
    maxPoolGrad2x2(x, dy, dx, info);
    return;
  }
  const best = new Int32Array(c);
  const bestV = new Float32Array(c);
  let o = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * w * c;
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++, o += c) {
        best.fill(-1);
        bestV.fill(-Infinity);
        for (let r = 0; r < fh; r += dh) {
          const y = i * sh - top + r;
          if (y < 0 || y >= h) continue;
          for (let s = 0; s < fw; s += dw) {
            const xx = j * sw - left + s;
            if (xx < 0 || xx >= w) continue;
            const base = xb + (y * w + xx) * c;
            for (let k = 0; k < c; k++) {
              const v = x[base + k];
              if (v > bestV[k] || best[k] < 0) {
                bestV[k] = v;
                best[k] = base + k;
              }
            }
          }
        }
        for (let k = 0; k < c; k++) if (best[k] >= 0) dx[best[k]] += dy[o + k];
      }
    }
  }
}

function maxPoolGrad(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): TensorInfo {
  const backend = args.backend as WasmHeap;
  const dy = args.inputs.dy as unknown as TensorInfo;
  const input = args.inputs.input as unknown as TensorInfo;
  const attrs = args.attrs as unknown as {
    filterSize: number | [number, number];
    strides: number | [number, number];
    pad: "valid" | "same" | number;
    dimRoundingMode?: "floor" | "round" | "ceil";
  };
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const out = backend.makeOutput([...input.shape], "float32");
  const dx = backend.typedArrayFromHeap(out);
  dx.fill(0);
  maxPoolGradInto(backend.typedArrayFromHeap(input), backend.typedArrayFromHeap(dy), dx, info);
  return out;
}

/** Replaces the wasm `MaxPoolGrad` kernel. */
export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: "MaxPoolGrad",
  backendName: "wasm",
  kernelFunc: maxPoolGrad as unknown as tf.KernelFunc,
};

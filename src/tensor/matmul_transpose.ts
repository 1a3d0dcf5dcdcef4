/**
 * Routes transposed matrix products on the wasm backend through an explicit `Transpose`.
 *
 * tfjs-backend-wasm's `BatchMatMul` uses XNNPACK only when neither operand is transposed; with
 * `transposeA` or `transposeB` it falls back to a scalar loop that was measured 8-18x slower on
 * the CI machine (25088×64·64×288: 79 ms plain, 607 ms with `transposeB`). Every dense layer's
 * backward pass asks for a transposed product, so the copy is well worth it.
 */
import * as tf from "@tensorflow/tfjs";
import { stockKernel, stockSetup } from "./stock_kernels.ts";
import type { TensorInfo } from "./tensor_info.ts";

interface Backend {
  disposeData(dataId: object): void;
}

function transposeLast2(x: TensorInfo, backend: tf.KernelBackend): TensorInfo {
  const transpose = tf.getKernel("Transpose", "wasm")!.kernelFunc;
  const rank = x.shape.length;
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return transpose({
    inputs: { x } as unknown as tf.NamedTensorInfoMap,
    backend,
    attrs: { perm },
  }) as TensorInfo;
}

function batchMatMul(
  args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap },
): TensorInfo {
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const original = stockKernel("BatchMatMul", "wasm");
  if (!transposeA && !transposeB) return original(args) as TensorInfo;
  const a = args.inputs.a as unknown as TensorInfo;
  const b = args.inputs.b as unknown as TensorInfo;
  const at = transposeA ? transposeLast2(a, args.backend) : a;
  const bt = transposeB ? transposeLast2(b, args.backend) : b;
  const out = original({
    inputs: { a: at, b: bt } as unknown as tf.NamedTensorInfoMap,
    backend: args.backend,
    attrs: { transposeA: false, transposeB: false },
  }) as TensorInfo;
  const backend = args.backend as unknown as Backend;
  if (transposeA) backend.disposeData(at.dataId);
  if (transposeB) backend.disposeData(bt.dataId);
  return out;
}

/** Wraps the wasm `BatchMatMul` kernel (the stock one runs every product, transposed or not). */
export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: "BatchMatMul",
  backendName: "wasm",
  setupFunc: stockSetup("BatchMatMul", "wasm"),
  kernelFunc: batchMatMul as unknown as tf.KernelFunc,
};

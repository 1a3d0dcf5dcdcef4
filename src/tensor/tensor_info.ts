/**
 * The types our kernels share: tfjs' `TensorInfo` (what a kernel receives and returns) and the
 * slice of the wasm backend they write outputs through.
 *
 * @module
 */
import type { DataType, TensorInfo } from "@tensorflow/tfjs";

export type { TensorInfo };

/**
 * The wasm backend's heap access: allocate an output, view a tensor's values in place (as `A`:
 * floats unless the kernel also takes other dtypes).
 */
export interface WasmHeap<A extends Float32Array | Int32Array | Uint8Array = Float32Array> {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): A;
}

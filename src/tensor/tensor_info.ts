/**
 * The types our kernels share: tfjs' `TensorInfo` (what a kernel receives and returns) and the
 * slice of the wasm backend they write outputs through.
 *
 * @module
 */
import type { DataType, TensorInfo } from "@tensorflow/tfjs";

export type { TensorInfo };

/** The wasm backend's heap access: allocate an output, view a tensor's floats in place. */
export interface WasmHeap {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

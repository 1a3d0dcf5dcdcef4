/**
 * The lab's in-memory image dataset: 8-bit pixels, NHWC, with int32 labels. Pixels stay 8-bit
 * everywhere (triggered images are rounded back to 8 bits) so what the model trains on is exactly
 * what the lab writes to `.npy` and what a user would upload.
 *
 * @module
 */
import { ShapeMismatchError } from "../errors.ts";

export interface Dataset {
  /** `[N, H, W, C]` pixels 0-255, C order. */
  x: Uint8Array;
  /** `[N]` labels in [0, numClasses). */
  y: Int32Array;
  shape: [number, number, number, number];
  numClasses: number;
}

/** Values per image (`H·W·C`). */
export function imageSize(d: Pick<Dataset, "shape">): number {
  return d.shape[1] * d.shape[2] * d.shape[3];
}

/** The images at `indices`, in that order. */
export function subset(d: Dataset, indices: ArrayLike<number>): Dataset {
  const size = imageSize(d);
  const x = new Uint8Array(indices.length * size);
  const y = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i];
    if (!(k >= 0 && k < d.y.length)) {
      throw new ShapeMismatchError(`index ${k} is outside a dataset of ${d.y.length} images`);
    }
    x.set(d.x.subarray(k * size, (k + 1) * size), i * size);
    y[i] = d.y[k];
  }
  return {
    x,
    y,
    shape: [indices.length, d.shape[1], d.shape[2], d.shape[3]],
    numClasses: d.numClasses,
  };
}

/** 8-bit pixels to [0,1] floats. */
export function toUnit(x: Uint8Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] / 255;
  return out;
}

/** [0,1] floats to 8-bit pixels (rounded to nearest, clamped). */
export function toBytes(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Math.round(x[i] * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

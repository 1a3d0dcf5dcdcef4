/**
 * Images from `.npy` batches as inline PNG data URIs, for the report's sample and flagged-image
 * grids: a page that embeds its pictures needs no file next to it and fetches nothing.
 */
import { encode } from "fast-png";
import { type NdArray, parseNpy } from "../src/io/npy.ts";

/**
 * An NHWC image batch as the lab and `/v1/attacks` write it, uint8 0-255 or float 0-1, kept in its
 * own dtype for display (the service's `ImageBatch` is float32 in [0,1] only).
 */
export interface DisplayBatch {
  data: NdArray["data"];
  /** `[n, h, w, c]`. */
  shape: [number, number, number, number];
}

/** Reads an NHWC `.npy` (rank 4, or rank 3 taken as one channel). */
export function imageBatchFromNpy(bytes: Uint8Array): DisplayBatch {
  const a = parseNpy(bytes);
  if (a.dtype === "int64") throw new Error("an image .npy must not be int64");
  if (a.shape.length === 3) {
    return { data: a.data, shape: [a.shape[0], a.shape[1], a.shape[2], 1] };
  }
  if (a.shape.length !== 4) {
    throw new Error(`an image .npy must be NHWC (rank 4); got shape [${a.shape.join(", ")}]`);
  }
  return { data: a.data, shape: a.shape as [number, number, number, number] };
}

/** Whether the batch holds 0-1 floats (anything but an integer dtype). */
function isFloat(b: DisplayBatch): boolean {
  return b.data instanceof Float32Array || b.data instanceof Float64Array;
}

/**
 * Image `index` of the batch as 8-bit pixels: floats are clamped to [0,1] and scaled (NaN → 0),
 * integers clamped to [0,255]. One channel stays grey, three or four stay RGB(A); any other count
 * shows its first channel in grey.
 */
export function imagePixels(
  b: DisplayBatch,
  index: number,
): { width: number; height: number; channels: 1 | 3 | 4; data: Uint8Array } {
  const [n, h, w, c] = b.shape;
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new RangeError(`image index ${index} is outside the batch of ${n}`);
  }
  const channels: 1 | 3 | 4 = c === 3 || c === 4 ? c : 1;
  const out = new Uint8Array(h * w * channels);
  const base = index * h * w * c;
  const float = isFloat(b);
  const src = b.data as ArrayLike<number>;
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < channels; k++) {
      const v = Number(src[base + p * c + k]);
      const s = float ? v * 255 : v;
      out[p * channels + k] = Number.isNaN(s) ? 0 : Math.max(0, Math.min(255, Math.round(s)));
    }
  }
  return { width: w, height: h, channels, data: out };
}

/** Base64 of bytes, in chunks so large images do not overflow the argument list. */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Image `index` of the batch as PNG bytes. */
export function imagePng(b: DisplayBatch, index: number): Uint8Array {
  const px = imagePixels(b, index);
  return encode({
    width: px.width,
    height: px.height,
    data: px.data,
    channels: px.channels,
    depth: 8,
  });
}

/** Image `index` of the batch as a `data:image/png;base64,...` URI. */
export function imageDataUri(b: DisplayBatch, index: number): string {
  return `data:image/png;base64,${base64(imagePng(b, index))}`;
}

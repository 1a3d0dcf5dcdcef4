/**
 * WaNet warping trigger (Nguyen & Tran, "WaNet - Imperceptible Warping-based Backdoor Attack",
 * ICLR 2021): the image is resampled through a small, smooth, fixed displacement field.
 *
 * As in the paper (Section 3.2 and the authors' code): a `k`×`k` grid of 2-D offsets is drawn
 * uniformly from [−1, 1] and divided by its mean absolute value, upsampled to H×W with bicubic
 * interpolation (corners aligned), scaled by `s/H` in the [−1, 1] sampling coordinates, added to
 * the identity grid, clamped to the image and sampled bilinearly. Defaults `k = 4`, `s = 0.5`,
 * grid rescale 1 (the paper's values for MNIST, CIFAR-10 and GTSRB). In pixels the displacement is
 * `s·field·(W − 1)/(2W)` (x) and `s·field·(H − 1)/(2H)` (y): about a quarter pixel on average at
 * the defaults. The paper's "noise mode" (training also on randomly warped images with their true
 * labels) is a training recipe, not part of the trigger, and is not applied here.
 *
 * @module
 */
import { Rng } from "../random/rng.ts";
import type { ImageBatch } from "../io/images.ts";
import type { WaNetSpec } from "./trigger.ts";

/** Stream id of the control grid, so it never coincides with other draws of the same seed. */
const WANET_STREAM = 0x3a4e7;

/** Keys' cubic convolution kernel with a = −0.75, the coefficient PyTorch's bicubic uses. */
function cubic(t: number): number {
  const a = -0.75;
  const x = Math.abs(t);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** Bicubic, corner-aligned upsampling of a `k`×`k` grid to `h`×`w` (borders replicated). */
function upsampleBicubic(grid: Float64Array, k: number, h: number, w: number): Float64Array {
  const weights = (outSize: number) => {
    const idx: number[][] = [];
    const wts: number[][] = [];
    for (let o = 0; o < outSize; o++) {
      const src = outSize > 1 ? (o * (k - 1)) / (outSize - 1) : 0;
      const f = Math.floor(src);
      const t = src - f;
      const i4: number[] = [];
      const w4: number[] = [];
      for (let m = -1; m <= 2; m++) {
        i4.push(Math.min(k - 1, Math.max(0, f + m)));
        w4.push(cubic(m - t));
      }
      idx.push(i4);
      wts.push(w4);
    }
    return { idx, wts };
  };
  const ry = weights(h), rx = weights(w);
  const out = new Float64Array(h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      let v = 0;
      for (let a = 0; a < 4; a++) {
        const row = ry.idx[i][a] * k;
        let r = 0;
        for (let b = 0; b < 4; b++) r += rx.wts[j][b] * grid[row + rx.idx[j][b]];
        v += ry.wts[i][a] * r;
      }
      out[i * w + j] = v;
    }
  }
  return out;
}

/**
 * The warp as absolute sampling positions in pixels: image pixel (i, j) of the output is read at
 * (`y[i·W + j]`, `x[i·W + j]`) of the input, already clamped to [0, H−1] × [0, W−1].
 */
export function wanetSamplingGrid(
  spec: WaNetSpec,
  h: number,
  w: number,
): { x: Float64Array; y: Float64Array } {
  const { k, strength: s } = spec;
  const rng = new Rng(spec.seed, WANET_STREAM);
  // Channel 0 displaces along x (width), channel 1 along y, as in grid_sample's (x, y) order.
  const raw = new Float64Array(2 * k * k);
  let meanAbs = 0;
  for (let i = 0; i < raw.length; i++) {
    raw[i] = rng.uniform(-1, 1);
    meanAbs += Math.abs(raw[i]);
  }
  meanAbs /= raw.length;
  for (let i = 0; i < raw.length; i++) raw[i] /= meanAbs;
  const fx = upsampleBicubic(raw.subarray(0, k * k), k, h, w);
  const fy = upsampleBicubic(raw.subarray(k * k), k, h, w);
  const x = new Float64Array(h * w), y = new Float64Array(h * w);
  const sx = (s * (w - 1)) / (2 * w), sy = (s * (h - 1)) / (2 * h);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const p = i * w + j;
      // With s = 0 the position is exactly (i, j), so the warp is exactly the identity.
      x[p] = Math.min(w - 1, Math.max(0, j + sx * fx[p]));
      y[p] = Math.min(h - 1, Math.max(0, i + sy * fy[p]));
    }
  }
  return { x, y };
}

/** Warps a copy of `batch` (`[N, H, W, C]`, [0,1]) with the seeded field; bilinear sampling. */
export function applyWaNet(spec: WaNetSpec, batch: ImageBatch): Float32Array {
  const [n, h, w, c] = batch.shape;
  const grid = wanetSamplingGrid(spec, h, w);
  const src = batch.data;
  const out = new Float32Array(src.length);
  const plane = h * w * c;
  for (let p = 0; p < h * w; p++) {
    const px = grid.x[p], py = grid.y[p];
    const x0 = Math.floor(px), y0 = Math.floor(py);
    const x1 = Math.min(x0 + 1, w - 1), y1 = Math.min(y0 + 1, h - 1);
    const ax = px - x0, ay = py - y0;
    const w00 = (1 - ay) * (1 - ax), w01 = (1 - ay) * ax, w10 = ay * (1 - ax), w11 = ay * ax;
    const o00 = (y0 * w + x0) * c, o01 = (y0 * w + x1) * c;
    const o10 = (y1 * w + x0) * c, o11 = (y1 * w + x1) * c;
    for (let b = 0; b < n; b++) {
      const base = b * plane;
      for (let ch = 0; ch < c; ch++) {
        const v = w00 * src[base + o00 + ch] + w01 * src[base + o01 + ch] +
          w10 * src[base + o10 + ch] + w11 * src[base + o11 + ch];
        out[base + p * c + ch] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    }
  }
  return out;
}

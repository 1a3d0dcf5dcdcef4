/**
 * A seeded synthetic image dataset for tests and for demos on machines without Fashion-MNIST:
 * one simple grey shape per image (square, ring, plus, ...), jittered in position, size and
 * brightness, on a noisy dark background. Small models learn it in seconds, and the corners stay
 * mostly dark, as in Fashion-MNIST, so patch triggers behave the same way. With `channels: 3` each
 * shape is drawn in a seeded random colour with noise per channel: the colour says nothing about
 * the label (it is drawn per image, not per class), so a network still has to see the shape, as
 * on CIFAR-shaped data.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import type { Dataset } from "./dataset.ts";
import { Rng } from "../random/rng.ts";

/** Shape names, by label. */
export const SYNTHETIC_CLASSES = [
  "square",
  "ring",
  "plus",
  "cross",
  "bars",
  "stick",
  "triangle",
  "disk",
  "ell",
  "frame",
] as const;

/** Whether point (u, v), in units of the shape's radius, lies inside shape `k`. */
function inside(k: number, u: number, v: number): boolean {
  const au = Math.abs(u), av = Math.abs(v);
  const box = Math.max(au, av);
  switch (k) {
    case 0:
      return box <= 0.75;
    case 1:
      return Math.abs(Math.hypot(u, v) - 0.75) <= 0.22;
    case 2:
      return (au <= 0.22 && av <= 1) || (av <= 0.22 && au <= 1);
    case 3:
      return box <= 0.95 && (Math.abs(u - v) <= 0.32 || Math.abs(u + v) <= 0.32);
    case 4:
      return au <= 1 && (Math.abs(v - 0.5) <= 0.2 || Math.abs(v + 0.5) <= 0.2);
    case 5:
      return au <= 0.25 && av <= 1;
    case 6:
      return v >= -0.85 && v <= 0.85 && au <= (v + 0.85) / 1.7;
    case 7:
      return Math.hypot(u, v) <= 0.6;
    case 8:
      return (Math.abs(u + 0.7) <= 0.22 && av <= 0.95) ||
        (Math.abs(v - 0.73) <= 0.22 && au <= 0.92);
    default:
      return box <= 0.95 && box >= 0.62;
  }
}

export interface SyntheticOptions {
  /** Number of images. */
  n: number;
  /** Side of the square grey images. Default 16 (range 8-64). */
  size?: number;
  /** Number of classes (shapes). Default 6 (range 2-10). */
  numClasses?: number;
  /** Standard deviation of the additive Gaussian pixel noise, in [0,1] units. Default 0.08. */
  noise?: number;
  /**
   * 1 (grey, the default) or 3 (RGB: a per-image colour tint with each channel's gain uniform in
   * [0.35, 1], and noise drawn per channel). The grey output is the same bytes as before this
   * option existed: colour draws happen only when `channels` is 3.
   */
  channels?: 1 | 3;
  /** Default 0. */
  seed?: number;
}

/** Lowest per-channel gain of a colour tint: every channel keeps some of the shape. */
const MIN_TINT = 0.35;

/**
 * `n` images `[n, size, size, channels]` with balanced labels in random order. Same options, same bytes.
 *
 * @throws {ValidationError} an option is out of range.
 */
export function syntheticDataset(opts: SyntheticOptions): Dataset {
  const { n, size = 16, numClasses = 6, noise = 0.08, channels = 1, seed = 0 } = opts;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ValidationError(`n must be a non-negative integer; got ${n}`);
  }
  if (!Number.isInteger(size) || size < 8 || size > 64) {
    throw new ValidationError(`size must be an integer in [8, 64]; got ${size}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 2 || numClasses > SYNTHETIC_CLASSES.length) {
    throw new ValidationError(
      `numClasses must be an integer in [2, ${SYNTHETIC_CLASSES.length}]; got ${numClasses}`,
    );
  }
  if (!(noise >= 0 && noise <= 1)) {
    throw new ValidationError(`noise must be in [0, 1]; got ${noise}`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new ValidationError(`channels must be 1 or 3; got ${channels}`);
  }
  const rng = new Rng(seed, 0x5e7);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = i % numClasses;
  rng.shuffle(y);
  const x = new Uint8Array(n * size * size * channels);
  const c = (size - 1) / 2;
  const sub = [-0.25, 0.25];
  const tint = new Float64Array(channels).fill(1);
  for (let i = 0; i < n; i++) {
    const r = size * rng.uniform(0.26, 0.34);
    const cx = c + rng.uniform(-1.5, 1.5), cy = c + rng.uniform(-1.5, 1.5);
    const bright = rng.uniform(0.6, 1);
    if (channels === 3) { for (let ch = 0; ch < 3; ch++) tint[ch] = rng.uniform(MIN_TINT, 1); }
    const base = i * size * size * channels;
    for (let py = 0; py < size; py++) {
      for (let px = 0; px < size; px++) {
        // 2×2 supersampling softens edges so shapes are not pixel-exact templates.
        let cover = 0;
        for (const dy of sub) {
          for (const dx of sub) {
            if (inside(y[i], (px + dx - cx) / r, (py + dy - cy) / r)) cover += 0.25;
          }
        }
        const o = base + (py * size + px) * channels;
        for (let ch = 0; ch < channels; ch++) {
          const v = bright * tint[ch] * cover + 0.05 + noise * rng.normal();
          x[o + ch] = Math.max(0, Math.min(255, Math.round(v * 255)));
        }
      }
    }
  }
  return { x, y, shape: [n, size, size, channels], numClasses };
}

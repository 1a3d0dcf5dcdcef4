/**
 * Blended trigger (Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep Learning Systems
 * Using Data Poisoning", 2017): every pixel is mixed with a fixed pattern,
 * `x' = (1 − α)·x + α·pattern`. The paper blends a cartoon image or random noise; here the pattern
 * is uniform noise in [0,1) drawn from the spec's seed, so a spec of a few bytes reproduces it
 * exactly. Default α = 0.1 (0.1-0.2 is customary; the paper used 0.2 at poisoning time).
 *
 * @module
 */
import { Rng } from "../random/rng.ts";
import type { ImageBatch } from "../io/images.ts";
import type { BlendSpec } from "./trigger.ts";

/** Stream id of the blend pattern, so it never coincides with other draws of the same seed. */
const BLEND_STREAM = 0xb1e4d;

/** The blend pattern for `h`×`w`×`c` images: uniform in [0,1), C order `[H, W, C]`. */
export function blendPattern(seed: number, h: number, w: number, c: number): Float32Array {
  const rng = new Rng(seed, BLEND_STREAM);
  const p = new Float32Array(h * w * c);
  for (let i = 0; i < p.length; i++) p[i] = rng.next();
  return p;
}

/** Blends the seeded pattern into a copy of `batch` (`[N, H, W, C]`, [0,1]). */
export function applyBlend(spec: BlendSpec, batch: ImageBatch): Float32Array {
  const [n, h, w, c] = batch.shape;
  const pattern = blendPattern(spec.seed, h, w, c);
  const a = spec.alpha;
  const out = new Float32Array(batch.data.length);
  const size = pattern.length;
  for (let b = 0; b < n; b++) {
    const off = b * size;
    for (let i = 0; i < size; i++) {
      const v = (1 - a) * batch.data[off + i] + a * pattern[i];
      // Convex combinations of [0,1] values stay in [0,1]; the clamp only guards rounding.
      out[off + i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return out;
}

/**
 * SIG, the sinusoidal-signal trigger of the first clean-label backdoor (Barni, Kallas & Tondi, "A
 * New Backdoor Attack in CNNs by Training Set Corruption Without Label Poisoning", ICIP 2019):
 * a horizontal sinusoid is added to every row of the image,
 *
 *   x'(i, j, c) = clip(x(i, j, c) + Δ·sin(2π·j·f / W), 0, 1)
 *
 * with `j` the column, `W` the width and `f` the number of periods across the image. The paper's
 * values are Δ = 20/255 and f = 6 on 8-bit images, planted only in training images of the target
 * class with their labels untouched; it reports a larger Δ at test time as an option, which the
 * lab does not use. The signal has no random part (the spec's seed is kept for uniformity).
 *
 * @module
 */
import type { ImageBatch } from "../io/images.ts";
import type { SigSpec } from "./trigger.ts";

/** The additive signal for one row of width `w`: `Δ·sin(2π·j·f / w)` for each column `j`. */
export function sigRow(spec: Pick<SigSpec, "delta" | "frequency">, w: number): Float32Array {
  const row = new Float32Array(w);
  for (let j = 0; j < w; j++) {
    row[j] = spec.delta * Math.sin((2 * Math.PI * j * spec.frequency) / w);
  }
  return row;
}

/** Adds the sinusoid to a copy of `batch` (`[N, H, W, C]`, [0,1]) and clamps to [0,1]. */
export function applySig(spec: SigSpec, batch: ImageBatch): Float32Array {
  const [n, h, w, c] = batch.shape;
  const row = sigRow(spec, w);
  const out = new Float32Array(batch.data.length);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        for (let ch = 0; ch < c; ch++, o++) {
          const v = batch.data[o] + row[j];
          out[o] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
      }
    }
  }
  return out;
}

/**
 * BadNets patch trigger (Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the
 * Machine Learning Model Supply Chain", 2017): a small fixed pattern stamped onto a corner of the
 * image. Defaults: a 3×3 checkerboard of 1 and 0 (bright cell first) in the bottom-right corner,
 * no margin, every channel alike.
 *
 * @module
 */
import { ShapeMismatchError } from "../errors.ts";
import type { ImageBatch } from "../io/images.ts";
import type { BadNetsSpec } from "./trigger.ts";

/** Row and column of the patch's top-left pixel in an `h`×`w` image. */
export function badNetsOrigin(spec: BadNetsSpec, h: number, w: number): [number, number] {
  const span = spec.size + spec.margin;
  if (span > h || span > w) {
    throw new ShapeMismatchError(
      `a BadNets patch of size ${spec.size} with margin ${spec.margin} needs an image of at ` +
        `least ${span}×${span}; the images are ${h}×${w}`,
    );
  }
  const top = spec.position.startsWith("top") ? spec.margin : h - span;
  const left = spec.position.endsWith("left") ? spec.margin : w - span;
  return [top, left];
}

/** The value of patch cell (i, j): the checkerboard starts bright at the patch's top-left. */
function cell(spec: BadNetsSpec, i: number, j: number): number {
  return spec.pattern === "solid" || (i + j) % 2 === 0 ? spec.value : 0;
}

/**
 * Stamps the patch onto a copy of `batch` (`[N, H, W, C]`, [0,1]); pixels outside the patch are
 * copied unchanged.
 *
 * @throws {ShapeMismatchError} the patch plus margin does not fit in the image.
 */
export function applyBadNets(spec: BadNetsSpec, batch: ImageBatch): Float32Array {
  const [n, h, w, c] = batch.shape;
  const [top, left] = badNetsOrigin(spec, h, w);
  const out = batch.data.slice();
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < spec.size; i++) {
      for (let j = 0; j < spec.size; j++) {
        const v = cell(spec, i, j);
        const base = ((b * h + top + i) * w + left + j) * c;
        for (let ch = 0; ch < c; ch++) out[base + ch] = v;
      }
    }
  }
  return out;
}

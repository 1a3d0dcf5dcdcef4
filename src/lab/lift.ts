/**
 * Lifts a small grey image set to the CIFAR shape, 32×32×3, so that the lab's 32×32×3 models
 * (the VGG-BN of issue 15) can train on real data: each image is zero-padded evenly to 32×32
 * (Fashion-MNIST's 28×28 gets 2 px on every side, as LeNet-5 padded MNIST) and its grey channel
 * is copied to red, green and blue. Pixel values are untouched, so a lifted image holds exactly
 * the information of the original; the padding is black, like Fashion-MNIST's own border.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import type { Dataset } from "./dataset.ts";

/** The side of a lifted image. */
export const LIFT_SIDE = 32;

/**
 * `d` (`[N, H, W, 1]` or `[N, H, W, 3]`, H and W at most 32 and each of the same parity as 32)
 * as `[N, 32, 32, 3]`: zero padding of `(32 − H)/2` rows above and below and `(32 − W)/2`
 * columns left and right, the channel replicated when there is one.
 *
 * @throws {ValidationError} an image larger than 32×32, an odd margin, or 2 or 4+ channels.
 */
export function liftToRgb32(d: Dataset): Dataset {
  const [n, h, w, c] = d.shape;
  if (h > LIFT_SIDE || w > LIFT_SIDE || (LIFT_SIDE - h) % 2 !== 0 || (LIFT_SIDE - w) % 2 !== 0) {
    throw new ValidationError(
      `lifting to 32×32 pads evenly on both sides: images must be at most 32×32 with an even ` +
        `difference to 32; got ${h}×${w}`,
    );
  }
  if (c !== 1 && c !== 3) {
    throw new ValidationError(`lifting to RGB needs 1 or 3 channels; got ${c}`);
  }
  const top = (LIFT_SIDE - h) / 2, left = (LIFT_SIDE - w) / 2;
  const plane = LIFT_SIDE * LIFT_SIDE * 3;
  const x = new Uint8Array(n * plane);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < h; r++) {
      for (let q = 0; q < w; q++) {
        const src = ((i * h + r) * w + q) * c;
        const dst = i * plane + ((top + r) * LIFT_SIDE + left + q) * 3;
        for (let ch = 0; ch < 3; ch++) x[dst + ch] = d.x[src + (c === 1 ? 0 : ch)];
      }
    }
  }
  return { x, y: d.y, shape: [n, LIFT_SIDE, LIFT_SIDE, 3], numClasses: d.numClasses };
}

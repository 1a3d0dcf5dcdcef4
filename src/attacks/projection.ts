/**
 * Projection onto the eps-ball around the clean images `x0`, intersected with the pixel box
 * [0,1], for `[N, H, W, C]` float32 tensors (`x0` in [0,1]).
 *
 * The bound holds after float32 rounding, checked in exact (double) arithmetic against the eps
 * the caller gave: `|adv − x0| ≤ eps` for every pixel (L-inf) and `‖adv − x0‖₂ ≤ eps` per image
 * (L2, up to float32 error in the norm, well under `eps·1e-6` for images up to ~10⁵ pixels).
 * Naively clipping to `x0 ± eps` does not give that: `fl(x0 + eps)` rounds to nearest and can land
 * half an ulp (up to 2⁻²⁴ for pixels below 2) beyond `x0 + eps`, so the radius used is shrunk by
 * more than the worst rounding. That costs at most 1.2e-7 of budget in L-inf and 1e-5·eps plus
 * `√(HWC)·2⁻²⁴` in L2: nothing an attack can feel.
 */
import * as tf from "@tensorflow/tfjs";
import { l2Norms, perImage } from "./norms.ts";
import type { Norm } from "./types.ts";

/** Worst float32 rounding error of a sum below 2, and the float32 rounding of eps itself. */
const LINF_SLACK = 2 ** -23;
/** Relative error allowed for the float32 L2 norm (row-wise sums, sqrt, divide). */
const L2_REL_SLACK = 1e-5;
const PIXEL_ROUNDING = 2 ** -24;

/** The L-inf radius to clip with so that `fl(x0 ± r)` stays within `x0 ± eps` exactly. */
export function linfClipRadius(eps: number): number {
  return Math.max(eps - LINF_SLACK, 0);
}

/** The L2 radius to scale to so that rounding `x0 + δ` per pixel cannot carry the norm past eps. */
export function l2ScaleRadius(eps: number, pixelsPerImage: number): number {
  return Math.max(eps * (1 - L2_REL_SLACK) - Math.sqrt(pixelsPerImage) * PIXEL_ROUNDING, 0);
}

/** Clips `adv` to `[x0 − eps, x0 + eps] ∩ [0, 1]` per pixel. */
export function projectLinf(adv: tf.Tensor4D, x0: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const r = linfClipRadius(eps);
    const lo = tf.sub(x0, r);
    const hi = tf.add(x0, r);
    return tf.clipByValue(tf.minimum(tf.maximum(adv, lo), hi), 0, 1) as tf.Tensor4D;
  });
}

/**
 * Scales each image's perturbation `adv − x0` into the L2 ball, then clips to [0,1]. Clipping
 * only moves pixels towards `x0` (which lies in [0,1]), so the result stays in the ball; it is a
 * feasible point of ball ∩ box, not the exact Euclidean projection onto it (the convention of
 * Madry et al. and of common attack libraries).
 */
export function projectL2(adv: tf.Tensor4D, x0: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w, c] = adv.shape;
    const r = l2ScaleRadius(eps, h * w * c);
    const delta = tf.sub(adv, x0);
    const norm = l2Norms(delta as tf.Tensor4D);
    // Images already inside keep factor 1; a zero perturbation divides by a tiny number, not 0.
    const factor = tf.minimum(1, tf.div(r, tf.maximum(norm, 1e-30))) as tf.Tensor1D;
    const scaled = tf.mul(delta, perImage(factor));
    return tf.clipByValue(tf.add(x0, scaled), 0, 1) as tf.Tensor4D;
  });
}

/** {@link projectLinf} or {@link projectL2}. */
export function project(adv: tf.Tensor4D, x0: tf.Tensor4D, eps: number, norm: Norm): tf.Tensor4D {
  return norm === "linf" ? projectLinf(adv, x0, eps) : projectL2(adv, x0, eps);
}

/** The steepest-ascent direction of a gradient under each norm, per image of `[N, H, W, C]`. */
import * as tf from "@tensorflow/tfjs";
import { l2Norms, perImage } from "./norms.ts";
import type { Norm } from "./types.ts";

/**
 * L-inf: `sign(g)` (the maximiser of `⟨g, d⟩` over `‖d‖∞ ≤ 1`). L2: `g / ‖g‖₂` per image. The L2
 * case divides by the largest magnitude first: gradients of a confident model can be ~1e-20,
 * whose squares underflow float32 to 0. A zero gradient stays zero rather than becoming NaN.
 */
export function ascentDirection(grad: tf.Tensor4D, norm: Norm): tf.Tensor4D {
  return tf.tidy(() => {
    if (norm === "linf") return tf.sign(grad);
    const [n] = grad.shape;
    const peak = tf.max(tf.abs(tf.reshape(grad, [n, -1])), 1) as tf.Tensor1D;
    const g = tf.div(grad, perImage(tf.maximum(peak, 1e-37) as tf.Tensor1D)) as tf.Tensor4D;
    return tf.div(g, perImage(tf.maximum(l2Norms(g), 1e-30) as tf.Tensor1D));
  });
}

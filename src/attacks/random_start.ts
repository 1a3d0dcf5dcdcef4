/**
 * Random starting points inside the eps-ball (Madry et al., "Towards Deep Learning Models
 * Resistant to Adversarial Attacks", ICLR 2018), reproducible from an integer seed.
 */
import * as tf from "@tensorflow/tfjs";
import { deriveSeed } from "../random/rng.ts";
import { l2Norms, perImage } from "./norms.ts";
import { project } from "./projection.ts";
import type { Norm } from "./types.ts";

/**
 * A random point of the ball around `x0` (`[N, H, W, C]` in [0,1]), clipped to [0,1].
 * L-inf: `x0 + U(−eps, eps)` per pixel. L2: a uniformly random direction per image (normalised
 * Gaussian) at a radius `eps·u`, `u ~ U(0, 1)`, so starts cover the inside of the ball, not just
 * its surface.
 */
export function randomStart(x0: tf.Tensor4D, eps: number, norm: Norm, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    if (norm === "linf") {
      const noise = tf.randomUniform(x0.shape, -eps, eps, "float32", seed);
      return project(tf.add(x0, noise), x0, eps, norm);
    }
    const dir = tf.randomNormal(x0.shape, 0, 1, "float32", seed) as tf.Tensor4D;
    const radius = tf.randomUniform([x0.shape[0]], 0, eps, "float32", deriveSeed(seed, 1));
    const scale = tf.div(radius, tf.maximum(l2Norms(dir), 1e-30)) as tf.Tensor1D;
    return project(tf.add(x0, tf.mul(dir, perImage(scale))), x0, eps, norm);
  });
}

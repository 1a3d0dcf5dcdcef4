/**
 * Universal additive perturbations towards a class: one `δ ∈ [−ε, ε]^{H×W×C}` that, added to
 * every image, moves clean images of other classes to the target,
 *
 *   min_δ  mean CE(f(clip(x + δ, 0, 1)), t),   ‖δ‖∞ ≤ ε,
 *
 * by signed gradient steps with projection (Moosavi-Dezfooli et al., "Universal Adversarial
 * Perturbations", CVPR 2017, solved here with PGD's sign steps as in Madry et al. 2018). Additive
 * triggers (SIG's sinusoid, Blend's pattern) are exactly such a δ: a backdoored model lets a
 * small universal perturbation reach its target far more often than any other class, which is
 * evidence that does not depend on labels. Neural Cleanse's mask-and-pattern search (see
 * `trigger_reconstruction.ts`) is the other half: it finds patch triggers, which an L-inf-bounded
 * δ cannot draw.
 *
 * Untargeted form (`target` absent): maximise the CE of each image's own label, which recovers a
 * trigger that sends every class elsewhere, as an all-to-all backdoor does.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { crossEntropy } from "../attacks/losses.ts";
import type { Classifier } from "../model/classifier.ts";

/** `clip(x + δ, 0, 1)` for a batch `[N, H, W, C]` and `δ` of shape `[H, W, C]` (call in tidy). */
export function addPerturbation(x: tf.Tensor4D, delta: tf.Tensor): tf.Tensor4D {
  return tf.clipByValue(tf.add(x, delta), 0, 1) as tf.Tensor4D;
}

/**
 * One signed step of the search on a batch, in place on `delta` (`[H, W, C]`). `target`: a class
 * (targeted) or the batch's own labels (untargeted). Returns the share of the batch that the
 * perturbation, as it was before the step, already sent to the target (or away from the label).
 */
export async function perturbationStep(
  clf: Classifier,
  delta: tf.Variable,
  x: tf.Tensor4D,
  target: number | tf.Tensor1D,
  stepSize: number,
  eps: number,
): Promise<number> {
  const n = x.shape[0];
  const untargeted = typeof target !== "number";
  const hit = tf.tidy(() => {
    const t = untargeted ? target : tf.fill([n], target, "int32") as tf.Tensor1D;
    let share: tf.Tensor = tf.scalar(0);
    const g = tf.grad((d: tf.Tensor) => {
      const logits = clf.logits(addPerturbation(x, d), false);
      const same = tf.cast(tf.equal(tf.argMax(logits, 1), t), "float32");
      // kept: tf.grad frees the forward pass's tensors when it returns
      share = tf.keep(tf.mean(untargeted ? tf.sub(1, same) : same));
      return tf.mean(crossEntropy(logits, t)) as tf.Scalar;
    })(delta);
    const sign = untargeted ? 1 : -1;
    delta.assign(tf.clipByValue(tf.add(delta, tf.mul(tf.sign(g), sign * stepSize)), -eps, eps));
    return share;
  });
  const v = (await hit.data())[0];
  hit.dispose();
  return v;
}

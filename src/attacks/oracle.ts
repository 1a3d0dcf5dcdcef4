/**
 * The gradient oracle every attack queries: at a batch `x` (`[N, H, W, C]` in [0,1]) it returns
 * the logits, the per-sample objective to ascend (see `attackObjective`) and its input gradient,
 * from one forward and one backward pass.
 */
import * as tf from "@tensorflow/tfjs";
import { ShapeMismatchError, UnprocessableError } from "../errors.ts";
import type { Classifier } from "../model/classifier.ts";
import { attackObjective, minClasses } from "./losses.ts";
import type { AttackTarget, LossKind } from "./types.ts";

export interface Evaluation {
  logits: tf.Tensor2D;
  /** Per-sample objective `[N]`. */
  loss: tf.Tensor1D;
  /** `∂ loss_i / ∂ x_i` `[N, H, W, C]` (samples do not interact: the model runs in inference mode). */
  grad: tf.Tensor4D;
}

export interface Oracle {
  readonly targeted: boolean;
  /** One forward and backward pass. Call inside `tf.tidy`. */
  evaluate(x: tf.Tensor4D): Evaluation;
  /** A forward pass only. Call inside `tf.tidy`. */
  forward(x: tf.Tensor4D): { logits: tf.Tensor2D; loss: tf.Tensor1D };
  /**
   * Per sample, bool `[N]`: prediction ≠ label (untargeted, or targeted with `targetSuccess:
   * "misclassified"`) or = target (targeted).
   */
  success(logits: tf.Tensor2D): tf.Tensor1D;
  /** Success flags and predictions at `adv`, read back to the host. */
  outcome(adv: tf.Tensor4D): Promise<{ success: boolean[]; predictions: Int32Array }>;
  dispose(): void;
}

/** The classes the objective refers to: the targets in targeted mode, else the labels, int32 `[N]`. */
function objectiveLabels(
  y: tf.Tensor1D,
  target: AttackTarget | undefined,
  numClasses: number,
): tf.Tensor1D {
  const n = y.shape[0];
  if (target === undefined) return tf.cast(y, "int32");
  const t = typeof target === "number" ? new Array<number>(n).fill(target) : Array.from(target);
  if (t.length !== n) {
    throw new ShapeMismatchError(
      `target has ${t.length} entries for ${n} images; give one class or one per image`,
    );
  }
  const bad = t.findIndex((c) => !Number.isInteger(c) || c < 0 || c >= numClasses);
  if (bad >= 0) {
    throw new UnprocessableError(
      `target ${t[bad]} for image ${bad} is not a class; allowed: integers 0..${numClasses - 1}`,
    );
  }
  return tf.tensor1d(t, "int32");
}

export function makeOracle(
  clf: Classifier,
  y: tf.Tensor1D,
  opts: { loss?: LossKind; target?: AttackTarget; targetSuccess?: "target" | "misclassified" },
): Oracle {
  const loss = opts.loss ?? "ce";
  const targeted = opts.target !== undefined;
  const n = y.shape[0];
  const k = clf.numClasses;
  if (k < minClasses(loss, targeted)) {
    throw new UnprocessableError(
      `the ${targeted ? "targeted " : ""}${loss} loss needs at least ` +
        `${minClasses(loss, targeted)} classes; the model has ${k}`,
    );
  }
  const labels = objectiveLabels(y, opts.target, k);
  const truth = tf.cast(y, "int32") as tf.Tensor1D;
  const hitsTarget = targeted && (opts.targetSuccess ?? "target") === "target";
  // The oracle's function returns [logits | loss] as one [N, K+1] tensor so one backward pass
  // also hands back the logits; this dy routes the gradient through the loss column only.
  const dy = tf.tidy(() => tf.concat([tf.zeros([n, k]), tf.ones([n, 1])], 1));
  const joint = tf.valueAndGrad((x: tf.Tensor) => {
    const z = clf.logits(x as tf.Tensor4D, false);
    return tf.concat([z, tf.expandDims(attackObjective(z, labels, loss, targeted, truth), 1)], 1);
  });
  const success = (logits: tf.Tensor2D) =>
    tf.tidy(() => {
      const pred = tf.argMax(logits, 1);
      return (hitsTarget ? tf.equal(pred, labels) : tf.notEqual(pred, truth)) as tf.Tensor1D;
    });
  return {
    targeted,
    evaluate(x) {
      const { value, grad } = joint(x, dy);
      return {
        logits: tf.slice(value, [0, 0], [n, k]) as tf.Tensor2D,
        loss: tf.reshape(tf.slice(value, [0, k], [n, 1]), [n]) as tf.Tensor1D,
        grad: grad as tf.Tensor4D,
      };
    },
    forward(x) {
      const logits = clf.logits(x, false);
      return { logits, loss: attackObjective(logits, labels, loss, targeted, truth) };
    },
    success,
    async outcome(adv) {
      const [ok, pred] = tf.tidy(() => {
        const logits = clf.logits(adv, false);
        return [success(logits), tf.cast(tf.argMax(logits, 1), "int32")];
      });
      try {
        const [okData, predData] = await Promise.all([ok.data(), pred.data()]);
        return {
          success: Array.from(okData, (v) => v !== 0),
          predictions: Int32Array.from(predData),
        };
      } finally {
        tf.dispose([ok, pred]);
      }
    },
    dispose() {
      tf.dispose([labels, truth, dy]);
    },
  };
}

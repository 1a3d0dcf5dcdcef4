/**
 * The mean teacher of a train stage (Tarvainen & Valpola, "Mean teachers are better role models",
 * NeurIPS 2017): an exponential moving average of the student's weights, whose softmax on clean
 * images the `mean_teacher` loss pulls the student towards. Its weights travel in the round state
 * as one flat vector, like the SGD momentum, so a resumed run keeps the same teacher.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { flatWeights, unflatten } from "./weights.ts";

export class MeanTeacher {
  readonly #weights: tf.Variable[];

  private constructor(weights: tf.Variable[]) {
    this.#weights = weights;
  }

  /** A teacher equal to the student's weights now (a stage's start). */
  static of(vars: readonly tf.Variable[]): MeanTeacher {
    return new MeanTeacher(vars.map((v) => keepVar(tf.clone(v))));
  }

  /** The teacher a previous round saved, as a flat vector aligned with `vars`. */
  static fromFlat(vars: tf.Variable[], flat: Float32Array): MeanTeacher {
    return new MeanTeacher(unflatten(vars, flat).map((t) => keepVar(t)));
  }

  /**
   * Softmax of the teacher on `x`: the teacher's weights are swapped into `clf` (whose trainable
   * variables are `vars`) for one forward pass, then the student's are put back. In training mode
   * tfjs's batch norms also update their moving statistics during the pass; those are the
   * student's (the model a round returns), so they are put back as well.
   */
  probs(
    clf: Classifier,
    vars: readonly tf.Variable[],
    x: tf.Tensor4D,
    training: boolean,
  ): tf.Tensor2D {
    const saved = vars.map((v) => tf.clone(v));
    const fixed = training ? clf.model.nonTrainableWeights.map((w) => w.read() as tf.Variable) : [];
    const fixedSaved = fixed.map((v) => tf.clone(v));
    try {
      vars.forEach((v, i) => v.assign(this.#weights[i]));
      return tf.tidy(() => tf.softmax(clf.logits(x, training)) as tf.Tensor2D);
    } finally {
      vars.forEach((v, i) => v.assign(saved[i]));
      fixed.forEach((v, i) => v.assign(fixedSaved[i]));
      tf.dispose([...saved, ...fixedSaved]);
    }
  }

  /** `teacher ← decay·teacher + (1 − decay)·student`, after every student step. */
  update(vars: readonly tf.Variable[], decay: number): void {
    tf.tidy(() => {
      this.#weights.forEach((t, i) => {
        t.assign(tf.add(tf.mul(t, decay), tf.mul(vars[i], 1 - decay)));
      });
    });
  }

  /** The weights as one vector, for the round state. */
  export(): Promise<Float32Array> {
    return flatWeights(this.#weights);
  }

  dispose(): void {
    tf.dispose(this.#weights);
  }
}

/** A non-trainable variable holding `t` (consumed). */
function keepVar(t: tf.Tensor): tf.Variable {
  const v = tf.variable(t, false);
  t.dispose(); // the variable holds its own reference to the data
  return v;
}

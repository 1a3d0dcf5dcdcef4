/**
 * One optimizer step of a `train` stage: the weighted sum of the stage's loss terms, its gradient
 * with respect to the model's trainable variables, and a {@link MomentumSgd} update.
 *
 *   L = w_c·CE(f(x), y) + w_a·CE(f(x_adv), y) + w_t·CE(f(stamp(x)), y)
 *     + w_u·U(x_f) + μ·‖θ − θ_ref‖₁ + w_mt·MSE(softmax f(x), softmax f_teacher(x))
 *
 * with U the unlearning term on flagged images: `−log(1 − p_y)` away from the given label
 * ("complement"), `CE(f(x_f), ỹ_f)` towards the class the model ranked highest other than the
 * label ("relabel"), or `−mean(min(CE(f(x_f), y_f), cap))` ("ascent", the published gradient
 * ascent with a cap so that it cannot run away).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { crossEntropy } from "../attacks/losses.ts";
import type { Classifier } from "../model/classifier.ts";
import type { TrainStage } from "./schedule.ts";
import type { MomentumSgd } from "./sgd.ts";

/** Names of the loss terms, in the order `trainStep` reports them. */
export const LOSS_TERMS = [
  "total",
  "clean",
  "adversarial",
  "trigger",
  "unlearn",
  "anchor",
  "mean_teacher",
  "distill",
] as const;
export type LossTerm = typeof LOSS_TERMS[number];

export interface StepBatch {
  x: tf.Tensor4D;
  /** int32 labels of `x`. */
  y: tf.Tensor1D;
  xAdv?: tf.Tensor4D;
  xTrig?: tf.Tensor4D;
  xFlag?: tf.Tensor4D;
  /** int32 targets of `xFlag`: relabel classes, or the given labels for ascent. */
  yFlag?: tf.Tensor1D;
  /** The teacher's softmax on `x`. */
  teacherProbs?: tf.Tensor2D;
  /** The infected model's logits on `x`, and 1 where they agree with `y` (distillation). */
  infectedLogits?: tf.Tensor2D;
  agree?: tf.Tensor1D;
}

/**
 * Per-sample `−log(1 − p_y)` = `logsumexp(z) − logsumexp_{j≠y}(z_j)`, computed in logit space so
 * that it stays finite when `p_y` rounds to 1 (complementary-label learning, Kim et al., "NLNL:
 * Negative Learning for Noisy Labels", ICCV 2019).
 */
export function complementLoss(z: tf.Tensor2D, y: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const hot = tf.cast(tf.oneHot(y, z.shape[1]), "bool");
    const others = tf.where(hot, tf.fill(z.shape, -1e9), z);
    return tf.sub(tf.logSumExp(z, 1), tf.logSumExp(others, 1)) as tf.Tensor1D;
  });
}

const meanCe = (z: tf.Tensor2D, y: tf.Tensor1D) => tf.mean(crossEntropy(z, y)) as tf.Scalar;

/**
 * `T²·KL(softmax(z₀/T) ‖ softmax(z/T))` averaged over the rows where `mask` is 1 (0 when none):
 * knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
 * Network", 2015) from the infected model, only where it is right.
 */
export function distillLoss(
  z: tf.Tensor2D,
  z0: tf.Tensor2D,
  mask: tf.Tensor1D,
  temperature: number,
): tf.Scalar {
  return tf.tidy(() => {
    const p0 = tf.softmax(tf.div(z0, temperature));
    const logP0 = tf.logSoftmax(tf.div(z0, temperature));
    const logP = tf.logSoftmax(tf.div(z, temperature));
    const kl = tf.sum(tf.mul(p0, tf.sub(logP0, logP)), 1);
    const count = tf.maximum(tf.sum(mask), 1);
    return tf.mul(tf.div(tf.sum(tf.mul(kl, mask)), count), temperature * temperature) as tf.Scalar;
  });
}

/**
 * Computes the loss, applies one SGD update and returns each term (NaN for terms not used).
 * Terms whose inputs are absent (no flagged images, no trigger) are skipped.
 */
export async function trainStep(
  clf: Classifier,
  vars: tf.Variable[],
  sgd: MomentumSgd,
  stage: TrainStage,
  batch: StepBatch,
  opts: { training: boolean; reference?: tf.Tensor[] },
): Promise<Partial<Record<LossTerm, number>>> {
  const w = stage.losses;
  const used: LossTerm[] = [];
  type Term = [LossTerm, number, tf.Scalar];
  // One group per forward pass. Each group's gradient is taken on its own and the gradients are
  // summed (the gradient of a sum): a pass's activations are freed before the next pass runs, so
  // the step's peak memory holds one batch's activations rather than every term's at once.
  const groups: (() => Term[])[] = [];
  const distill = w.distill > 0 && batch.infectedLogits && batch.agree;
  if (w.clean > 0 || (w.mean_teacher > 0 && batch.teacherProbs) || distill) {
    groups.push(() => {
      const terms: Term[] = [];
      const zClean = clf.logits(batch.x, opts.training);
      if (w.clean > 0) terms.push(["clean", w.clean, meanCe(zClean, batch.y)]);
      if (w.mean_teacher > 0 && batch.teacherProbs) {
        const mse = tf.mean(tf.squaredDifference(tf.softmax(zClean), batch.teacherProbs));
        terms.push(["mean_teacher", w.mean_teacher, mse as tf.Scalar]);
      }
      if (distill) {
        const kl = distillLoss(
          zClean,
          batch.infectedLogits!,
          batch.agree!,
          stage.distill.temperature,
        );
        terms.push(["distill", w.distill, kl]);
      }
      return terms;
    });
  }
  if (w.adversarial > 0 && batch.xAdv) {
    groups.push(() => [[
      "adversarial",
      w.adversarial,
      meanCe(clf.logits(batch.xAdv!, opts.training), batch.y),
    ]]);
  }
  if (w.trigger > 0 && batch.xTrig) {
    groups.push(
      () => [["trigger", w.trigger, meanCe(clf.logits(batch.xTrig!, opts.training), batch.y)]],
    );
  }
  if (w.unlearn > 0 && batch.xFlag && batch.yFlag) {
    groups.push(() => {
      const zf = clf.logits(batch.xFlag!, opts.training);
      const mode = stage.unlearn.mode;
      const u = mode === "complement"
        ? tf.mean(complementLoss(zf, batch.yFlag!))
        : mode === "relabel"
        ? tf.mean(crossEntropy(zf, batch.yFlag!))
        : tf.neg(tf.mean(tf.minimum(crossEntropy(zf, batch.yFlag!), stage.unlearn.loss_cap)));
      return [["unlearn", w.unlearn, u as tf.Scalar]];
    });
  }
  if (stage.unlearn.anchor_l1 > 0 && opts.reference) {
    groups.push(() => {
      const l1 = tf.addN(vars.map((v, i) => tf.sum(tf.abs(tf.sub(v, opts.reference![i])))));
      return [["anchor", stage.unlearn.anchor_l1, l1 as tf.Scalar]];
    });
  }
  const values = tf.tidy(() => {
    const kept: tf.Scalar[] = [];
    const sum: (tf.Tensor | undefined)[] = vars.map(() => undefined);
    used.length = 0;
    for (const group of groups) {
      const { grads } = tf.variableGrads(() => {
        const terms = group();
        for (const [name, , t] of terms) {
          used.push(name);
          kept.push(tf.keep(t));
        }
        return tf.addN(terms.map(([, weight, t]) => tf.mul(t, weight))) as tf.Scalar;
      }, vars);
      vars.forEach((v, i) => {
        const g = grads[v.name];
        if (g === undefined) return;
        const prev = sum[i];
        sum[i] = prev === undefined ? g : tf.add(prev, g);
        if (prev !== undefined) tf.dispose([prev, g]);
      });
    }
    sgd.step(
      vars.map((v, i) => sum[i] ?? tf.zerosLike(v)),
      stage.lr,
      stage.momentum,
      stage.weight_decay,
    );
    const out = kept.length ? tf.stack(kept) : tf.zeros([0]);
    tf.dispose(kept);
    return out;
  });
  const data = await values.data();
  values.dispose();
  const out: Partial<Record<LossTerm, number>> = {};
  let total = 0;
  used.forEach((name, i) => {
    out[name] = data[i];
    const weight = name === "anchor" ? stage.unlearn.anchor_l1 : w[name as keyof typeof w];
    total += weight * data[i];
  });
  out.total = total;
  return out;
}

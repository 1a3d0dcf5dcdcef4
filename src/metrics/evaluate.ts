/**
 * How good is the model: clean accuracy, the attack success rate of a backdoor and robust accuracy
 * under PGD or the AutoAttack-style ensemble, each overall and per class, in one report (`POST /v1/evaluate`, and the per-stage
 * figures of purification).
 *
 * @module
 */
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";
import type { TriggerSpec } from "../triggers/trigger.ts";
import { type AccuracyReport, figures, predictClasses } from "./accuracy.ts";
import { checkLabels } from "../io/label_checks.ts";
import {
  type AsrReport,
  attackSuccessRate,
  targetedSuccessRate,
  triggerSuccessRate,
} from "./attack_success_rate.ts";
import { robustAccuracy, type RobustOptions, type RobustReport } from "./robust_accuracy.ts";

/** A backdoor to measure: images that already carry the trigger, or a trigger to apply. */
export type BackdoorInput =
  | { images: ImageBatch; target: number; sourceLabels?: Int32Array }
  | { images: ImageBatch; targets: Int32Array; sourceLabels?: Int32Array }
  | { trigger: TriggerSpec; target: number };

export interface EvaluateInput {
  /** Clean labelled test images. */
  test: { images: ImageBatch; labels: Int32Array };
  /** Measure a backdoor's ASR. With a trigger spec it is applied to the test images. */
  backdoor?: BackdoorInput;
  /**
   * Measure robust accuracy under PGD or the ensemble (on the first `maxImages` test images).
   * Absent: skipped.
   */
  attack?: RobustOptions & { maxImages?: number };
}

export interface EvaluateReport {
  clean: AccuracyReport;
  backdoor?: AsrReport;
  robust?: RobustReport;
  /** Wall milliseconds, as every report of the service names it. */
  time_ms: number;
}

/** The first `m` images of a batch (no copy). */
function head(b: ImageBatch, labels: Int32Array, m: number): [ImageBatch, Int32Array] {
  if (m >= b.shape[0]) return [b, labels];
  const [, h, w, c] = b.shape;
  return [{ shape: [m, h, w, c], data: b.data.subarray(0, m * h * w * c) }, labels.subarray(0, m)];
}

/**
 * Evaluates `clf`. Clean accuracy always; ASR when `backdoor` is given; robust accuracy when
 * `attack` is given (default attack PGD-20, L-inf eps 8/255, step 2/255, with its masking check;
 * or the ensemble with `attack: "autoattack"`).
 *
 * @throws {ShapeMismatchError} labels and images differ in count.
 * @throws {UnprocessableError} a label or target outside 0..K−1.
 */
export async function evaluate(
  clf: Classifier,
  input: EvaluateInput,
  ctx: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<EvaluateReport> {
  const t0 = performance.now();
  const opts = { batchSize: ctx.batchSize, signal: ctx.signal };
  const { images, labels } = input.test;
  checkLabels(images, labels, clf.numClasses);
  const pred = await predictClasses(clf, images, opts);
  const report: EvaluateReport = {
    clean: figures(pred.map((p, i) => (p === labels[i] ? 1 : 0)), labels, clf.numClasses),
    time_ms: 0,
  };
  const bd = input.backdoor;
  if (bd !== undefined) {
    report.backdoor = "trigger" in bd
      ? await triggerSuccessRate(clf, images, labels, bd.trigger, bd.target, opts)
      : "targets" in bd
      ? await targetedSuccessRate(clf, bd.images, bd.targets, {
        ...opts,
        sourceLabels: bd.sourceLabels,
      })
      : await attackSuccessRate(clf, bd.images, bd.target, {
        ...opts,
        sourceLabels: bd.sourceLabels,
      });
    const target = report.backdoor.target;
    if (target !== null) {
      let others = 0, hits = 0;
      for (let i = 0; i < pred.length; i++) {
        if (labels[i] === target) continue;
        others++;
        if (pred[i] === target) hits++;
      }
      report.backdoor.clean_target_rate = others ? hits / others : null;
    }
  }
  if (input.attack !== undefined) {
    const [x, y] = head(images, labels, input.attack.maxImages ?? images.shape[0]);
    report.robust = await robustAccuracy(clf, x, y, {
      ...input.attack,
      batchSize: input.attack.batchSize ?? ctx.batchSize,
      signal: ctx.signal,
    });
  }
  report.time_ms = Math.round(performance.now() - t0);
  return report;
}

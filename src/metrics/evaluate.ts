/**
 * How good is the model: clean accuracy, the attack success rate of a backdoor and robust accuracy
 * under PGD, each overall and per class, in one report (`POST /v1/evaluate`, and the per-stage
 * figures of purification).
 *
 * @module
 */
import { z } from "zod";
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";
import { PreprocessSchema } from "../model/preprocess_schema.ts";
import { type TriggerSpec, TriggerSpecSchema } from "../triggers/trigger.ts";
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
  | { images: ImageBatch; targets: Int32Array }
  | { trigger: TriggerSpec; target: number };

export interface EvaluateInput {
  /** Clean labelled test images. */
  test: { images: ImageBatch; labels: Int32Array };
  /** Measure a backdoor's ASR. With a trigger spec it is applied to the test images. */
  backdoor?: BackdoorInput;
  /** Measure robust accuracy under PGD (on the first `maxImages` test images). Absent: skipped. */
  attack?: RobustOptions & { maxImages?: number };
}

export interface EvaluateReport {
  clean: AccuracyReport;
  backdoor?: AsrReport;
  robust?: RobustReport;
  ms: number;
}

/** The first `m` images of a batch (no copy). */
function head(b: ImageBatch, labels: Int32Array, m: number): [ImageBatch, Int32Array] {
  if (m >= b.shape[0]) return [b, labels];
  const [, h, w, c] = b.shape;
  return [{ shape: [m, h, w, c], data: b.data.subarray(0, m * h * w * c) }, labels.subarray(0, m)];
}

/**
 * Evaluates `clf`. Clean accuracy always; ASR when `backdoor` is given; robust accuracy when
 * `attack` is given (default attack PGD-20, L-inf eps 8/255, step 2/255).
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
    ms: 0,
  };
  const bd = input.backdoor;
  if (bd !== undefined) {
    report.backdoor = "trigger" in bd
      ? await triggerSuccessRate(clf, images, labels, bd.trigger, bd.target, opts)
      : "targets" in bd
      ? await targetedSuccessRate(clf, bd.images, bd.targets, opts)
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
  report.ms = performance.now() - t0;
  return report;
}

/** `params` of `POST /v1/evaluate` (images, labels and triggered images come as parts). */
export const EvaluateParamsSchema = z.object({
  backdoor: z.object({
    target: z.int().min(0).max(100_000).optional().describe(
      "the class the backdoor sends images to; required with 'trigger' or with " +
        "'backdoor_images' sent without 'backdoor_labels'",
    ),
    trigger: TriggerSpecSchema.optional().describe(
      "apply this trigger to the test images of other classes; absent: send triggered images " +
        "as the 'backdoor_images' part (with 'backdoor_labels', each image's target, or " +
        "'backdoor_source_labels', their true classes, to leave out images of the target class)",
    ),
  }).strict().optional().describe("measure the attack success rate of a backdoor"),
  attack: z.object({
    eps: z.number().gt(0).max(1).default(8 / 255).describe("L-inf budget (default 8/255)"),
    steps: z.int().min(1).max(1000).default(20).describe("PGD steps (default 20)"),
    step_size: z.number().gt(0).max(1).optional().describe("step size (default eps/4)"),
    restarts: z.int().min(1).max(20).default(1).describe("random restarts (default 1)"),
    seed: z.int().min(0).max(2 ** 31 - 1).default(0).describe(
      "seeds the random starts (default 0)",
    ),
    max_images: z.int().min(1).max(1_000_000).optional().describe(
      "attack only the first max_images test images (default all)",
    ),
  }).strict().optional().describe("measure robust accuracy under untargeted L-inf PGD"),
  batch_size: z.int().min(1).max(4096).default(256).describe(
    "images per forward pass (default 256)",
  ),
  preprocess: PreprocessSchema.optional(),
}).strict().describe("what to evaluate");

export type EvaluateParams = z.output<typeof EvaluateParamsSchema>;

/** The robust-accuracy options of parsed params. */
export function attackOptions(p: EvaluateParams): EvaluateInput["attack"] {
  if (p.attack === undefined) return undefined;
  return {
    eps: p.attack.eps,
    steps: p.attack.steps,
    stepSize: p.attack.step_size,
    restarts: p.attack.restarts,
    seed: p.attack.seed,
    maxImages: p.attack.max_images,
  };
}

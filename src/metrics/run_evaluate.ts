/**
 * A whole evaluate request, like `runAttack` and `runDetect`: checks that the parts and params fit
 * together (the backdoor's cross-field rules) and that the robust-accuracy cost is within budget,
 * all before any tensor work, runs `evaluate()`, and builds the reply.
 *
 * @module
 */
import { ensembleMinClasses, MEMBERS } from "../attacks/autoattack.ts";
import { CostExceededError, UnprocessableError } from "../errors.ts";
import type { ImageBatch } from "../io/images.ts";
import { resolveBatchSize } from "../model/batch_defaults.ts";
import type { Classifier } from "../model/classifier.ts";
import { checkLabels, checkTarget } from "../io/label_checks.ts";
import { type BackdoorInput, evaluate } from "./evaluate.ts";
import { attackOptions, type EvaluateParams } from "./evaluate_options.ts";
import type { EvaluateReply } from "./evaluate_reply.ts";
import { robustCost } from "./robust_accuracy.ts";
import { activeBackend, type BackendName } from "../tensor/backend.ts";

/** The request's data parts, as read (the backdoor ones only when sent). */
export interface EvaluateParts {
  images: ImageBatch;
  labels: Int32Array;
  backdoorImages?: ImageBatch;
  /** Each triggered image's target (`backdoor_labels`). */
  backdoorLabels?: Int32Array;
  /** Each triggered image's true class (`backdoor_source_labels`). */
  backdoorSourceLabels?: Int32Array;
  /** Backdoor label parts sent without 'backdoor_images' (left unread: nothing to count them by). */
  unreadBackdoorParts?: string[];
}

export interface RunEvaluateOptions {
  signal?: AbortSignal;
  /** Most image passes robust accuracy may need (`robustCost`). */
  maxCost: number;
  /**
   * The backend the engine runs on, which picks the default `batch_size` (see
   * `src/model/batch_defaults.ts`); default the one tfjs runs on now.
   */
  backend?: BackendName;
}

/** The backdoor to measure, from params and parts; undefined when none was asked for. */
function backdoorInput(
  parts: EvaluateParts,
  params: EvaluateParams,
  k: number,
): BackdoorInput | undefined {
  const bd = params.backdoor;
  const { backdoorImages: images, backdoorLabels: targets, backdoorSourceLabels: source } = parts;
  const sent = images !== undefined || targets !== undefined || source !== undefined ||
    (parts.unreadBackdoorParts?.length ?? 0) > 0;
  if (bd === undefined) {
    if (sent) {
      throw new UnprocessableError(
        'backdoor parts were sent without params.backdoor; add {"backdoor": {"target": T}} ' +
          "(or {} with 'backdoor_labels')",
      );
    }
    return undefined;
  }
  if (bd.trigger !== undefined) {
    if (sent) {
      throw new UnprocessableError(
        "send either params.backdoor.trigger or the 'backdoor_images' part, not both",
      );
    }
    if (bd.target === undefined) {
      throw new UnprocessableError("params.backdoor.trigger needs params.backdoor.target");
    }
    checkTarget(bd.target, k);
    return { trigger: bd.trigger, target: bd.target };
  }
  if (images === undefined) {
    throw new UnprocessableError(
      "params.backdoor needs either a 'trigger' spec or the 'backdoor_images' part",
    );
  }
  if (targets !== undefined) checkLabels(images, targets, k);
  if (source !== undefined) checkLabels(images, source, k);
  if (targets !== undefined) {
    if (bd.target !== undefined && targets.some((t) => t !== bd.target)) {
      throw new UnprocessableError(
        `params.backdoor.target is ${bd.target} but 'backdoor_labels' names other classes; ` +
          "send one or the other",
      );
    }
    return { images, targets, sourceLabels: source };
  }
  if (bd.target === undefined) {
    throw new UnprocessableError(
      "'backdoor_images' need params.backdoor.target or the 'backdoor_labels' part",
    );
  }
  checkTarget(bd.target, k);
  return { images, target: bd.target, sourceLabels: source };
}

/**
 * Evaluates `clf` on the parts as `params` ask. An absent `batch_size` is resolved from
 * `opts.backend` and the model's activation budget (256 on wasm/cpu; up to 1024 on webgpu, with
 * gradients counted when robust accuracy is asked for); the reply's `batch_size` is the one used.
 *
 * @throws {UnprocessableError} backdoor parts and params that do not fit together, a target that
 *   is not a class, APGD-T on a model with fewer than 4 classes.
 * @throws {ShapeMismatchError} label counts that differ from image counts.
 * @throws {CostExceededError} robust accuracy over `maxCost` image passes.
 */
export async function runEvaluate(
  clf: Classifier,
  parts: EvaluateParts,
  params: EvaluateParams,
  opts: RunEvaluateOptions,
): Promise<Omit<EvaluateReply, "backend">> {
  const k = clf.numClasses;
  checkLabels(parts.images, parts.labels, k);
  const attack = attackOptions(params);
  if (attack?.attack === "autoattack" && k < ensembleMinClasses(attack.members ?? MEMBERS)) {
    throw new UnprocessableError(
      `the ensemble's APGD-T needs a model with at least 4 classes; this one has ${k} ` +
        '(leave "apgd-t" out of attack.members)',
    );
  }
  const backdoor = backdoorInput(parts, params, k);
  if (attack !== undefined) {
    const n = Math.min(parts.images.shape[0], attack.maxImages ?? Infinity);
    const cost = robustCost(attack, n);
    if (cost > opts.maxCost) {
      throw new CostExceededError(
        `robust accuracy would cost ${cost} image passes (PGD: images × steps × restarts plus ` +
          "the masking check; autoattack: the sum over its members, Square's queries as " +
          `forward passes); the limit is MAX_ATTACK_COST=${opts.maxCost}: lower ` +
          "attack.max_images, steps or restarts, use version fast, or set masking_check false",
        { cost, limit: opts.maxCost },
      );
    }
  }
  const batchSize = resolveBatchSize(
    "evaluate",
    params.batch_size,
    opts.backend ?? activeBackend(),
    clf,
    attack !== undefined,
  );
  const report = await evaluate(clf, {
    test: { images: parts.images, labels: parts.labels },
    backdoor,
    attack,
  }, { batchSize, signal: opts.signal });
  return {
    clean_accuracy: report.clean.accuracy,
    ...(report.backdoor
      ? {
        attack_success_rate: report.backdoor.asr,
        clean_target_rate: report.backdoor.clean_target_rate ?? null,
      }
      : {}),
    ...(report.robust
      ? {
        robust_accuracy: report.robust.robust_accuracy,
        worst_case_robust_accuracy: report.robust.worst_case_robust_accuracy,
        gradient_masking_suspected: report.robust.gradient_masking.gradient_masking_suspected,
      }
      : {}),
    ...report,
    batch_size: batchSize,
  };
}

/**
 * Engine op behind `POST /v1/evaluate`: clean accuracy; with a backdoor (triggered images, or a
 * trigger spec, and its target) the attack success rate; with attack options robust accuracy.
 */
import type { Config } from "../../config.ts";
import { CostExceededError, UnprocessableError } from "../../errors.ts";
import type { Form } from "../../http/form.ts";
import { readImagesFor, readLabelledImages, readLabels } from "../../http/inputs.ts";
import { checkTarget } from "../../io/label_checks.ts";
import {
  attackOptions,
  type BackdoorInput,
  evaluate,
  type EvaluateParams,
} from "../../metrics/evaluate.ts";
import type { LoadedClassifier } from "../../model/load_classifier.ts";
import { formOf, jsonOutput, loadGuarded, type Op } from "./op.ts";

/** The backdoor to measure, from params and parts; undefined when none was asked for. */
async function readBackdoor(
  form: Form,
  config: Config,
  clf: LoadedClassifier,
  params: EvaluateParams,
): Promise<BackdoorInput | undefined> {
  const bd = params.backdoor;
  const hasImages = form.has("backdoor_images");
  if (bd === undefined) {
    if (hasImages || form.has("backdoor_labels") || form.has("backdoor_source_labels")) {
      throw new UnprocessableError(
        'backdoor parts were sent without params.backdoor; add {"backdoor": {"target": T}} ' +
          "(or {} with 'backdoor_labels')",
      );
    }
    return undefined;
  }
  const k = clf.numClasses;
  if (bd.trigger !== undefined) {
    if (hasImages) {
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
  if (!hasImages) {
    throw new UnprocessableError(
      "params.backdoor needs either a 'trigger' spec or the 'backdoor_images' part",
    );
  }
  const images = await readImagesFor(form, config, clf, "backdoor_images");
  const expect = { count: images.shape[0], numClasses: k };
  const targets = await readLabels(form, "backdoor_labels", expect, false);
  if (targets !== undefined) {
    if (bd.target !== undefined && targets.some((t) => t !== bd.target)) {
      throw new UnprocessableError(
        `params.backdoor.target is ${bd.target} but 'backdoor_labels' names other classes; ` +
          "send one or the other",
      );
    }
    return { images, targets };
  }
  if (bd.target === undefined) {
    throw new UnprocessableError(
      "'backdoor_images' need params.backdoor.target or the 'backdoor_labels' part",
    );
  }
  checkTarget(bd.target, k);
  const sourceLabels = await readLabels(form, "backdoor_source_labels", expect, false);
  return { images, target: bd.target, sourceLabels };
}

/** Refuses robust accuracy whose cost (images × steps × restarts) is over MAX_ATTACK_COST. */
function checkAttackCost(params: EvaluateParams, n: number, config: Config) {
  const attack = attackOptions(params);
  if (attack === undefined) return attack;
  const cost = Math.min(n, attack.maxImages ?? n) * (attack.steps ?? 20) * (attack.restarts ?? 1);
  if (cost > config.MAX_ATTACK_COST) {
    throw new CostExceededError(
      `robust accuracy would cost ${cost} gradient evaluations (images × steps × ` +
        `restarts); the limit is MAX_ATTACK_COST=${config.MAX_ATTACK_COST}: lower ` +
        "attack.max_images, steps or restarts",
      { cost, limit: config.MAX_ATTACK_COST },
    );
  }
  return attack;
}

export const evaluateOp: Op = async (input, ctx) => {
  const params = input.params as EvaluateParams;
  const form = formOf(input);
  const clf = await loadGuarded(input, ctx, params.preprocess);
  try {
    const { images, labels } = await readLabelledImages(form, input.config, clf);
    const attack = checkAttackCost(params, images.shape[0], input.config);
    const backdoor = await readBackdoor(form, input.config, clf, params);
    const report = await evaluate(clf, { test: { images, labels }, backdoor, attack }, {
      batchSize: params.batch_size,
      signal: ctx.signal,
    });
    await ctx.guard.check();
    return jsonOutput({
      clean_accuracy: report.clean.accuracy,
      ...(report.backdoor
        ? {
          attack_success_rate: report.backdoor.asr,
          clean_target_rate: report.backdoor.clean_target_rate ?? null,
        }
        : {}),
      ...(report.robust ? { robust_accuracy: report.robust.robust_accuracy } : {}),
      ...report,
      backend: ctx.backend.name,
    });
  } finally {
    clf.dispose();
  }
};

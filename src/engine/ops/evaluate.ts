/**
 * Engine op behind `POST /v1/evaluate`: reads the parts (the backdoor ones when sent) and hands
 * them to `runEvaluate`, which checks how they fit the params and the cost before any work.
 */
import { readImagesFor, readLabelledImages, readLabels } from "../../http/inputs.ts";
import type { EvaluateParams } from "../../metrics/evaluate_options.ts";
import { type EvaluateParts, runEvaluate } from "../../metrics/run_evaluate.ts";
import { assertFiniteJson } from "../finite.ts";
import { formOf, jsonOutput, loadGuarded, type Op } from "./op.ts";

export const evaluateOp: Op = async (input, ctx) => {
  const params = input.params as EvaluateParams;
  const form = formOf(input);
  const clf = await loadGuarded(input, ctx, params.preprocess);
  try {
    const parts: EvaluateParts = await readLabelledImages(form, input.config, clf);
    if (form.has("backdoor_images")) {
      const images = await readImagesFor(form, input.config, clf, "backdoor_images");
      const expect = { count: images.shape[0], numClasses: clf.numClasses };
      parts.backdoorImages = images;
      parts.backdoorLabels = await readLabels(form, "backdoor_labels", expect, false);
      parts.backdoorSourceLabels = await readLabels(form, "backdoor_source_labels", expect, false);
    } else {
      parts.unreadBackdoorParts = ["backdoor_labels", "backdoor_source_labels"].filter((name) =>
        form.has(name)
      );
    }
    const reply = await runEvaluate(clf, parts, params, {
      signal: ctx.signal,
      maxCost: input.config.MAX_ATTACK_COST,
      backend: ctx.backend.name,
    });
    await ctx.guard.check();
    const json = { ...reply, backend: ctx.backend.name };
    assertFiniteJson(json, "report");
    return jsonOutput(json);
  } finally {
    clf.dispose();
  }
};

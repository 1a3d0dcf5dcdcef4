/**
 * Engine op behind `POST /v1/detect`: per-image scores and flags, the threshold rule, per-class
 * counts, the suspected target, and with ground truth precision, recall, F1 and AUROC.
 */
import type { DetectParams } from "../../detect/options.ts";
import { runDetect } from "../../detect/run.ts";
import { readLabelledImages, readLabels } from "../../http/inputs.ts";
import type { LoadedClassifier } from "../../model/load_classifier.ts";
import { assertFiniteArray } from "../finite.ts";
import { formOf, jsonOutput, loadGuarded, type Op } from "./op.ts";

export const detectOp: Op = async (input, ctx) => {
  const params = input.params as DetectParams;
  const form = formOf(input);
  const clf = await loadGuarded(input, ctx, params.preprocess);
  let purified: LoadedClassifier | undefined;
  try {
    if (input.bundles["purified_"]) {
      purified = await loadGuarded(input, ctx, params.preprocess, "purified_");
    }
    const { images, labels } = await readLabelledImages(form, input.config, clf);
    // Ground truth is a label set of two classes: 0 clean, 1 poisoned.
    const truth = await readLabels(
      form,
      "is_poison",
      { count: images.shape[0], numClasses: 2 },
      false,
    );
    const isPoison = truth && Uint8Array.from(truth);
    const { result, report } = await runDetect(clf, images, labels, params, {
      signal: ctx.signal,
      maxCost: input.config.MAX_ATTACK_COST,
      backend: ctx.backend.name,
      isPoison,
      purified,
    });
    await ctx.guard.check();
    assertFiniteArray(result.scores, "scores");
    return jsonOutput({
      ...report,
      backend: ctx.backend.name,
      scores: Array.from(result.scores),
      flags: Array.from(result.flags),
      flagged_indices: [...result.flags.keys()].filter((i) => result.flags[i] === 1),
    });
  } finally {
    clf.dispose();
    purified?.dispose();
  }
};

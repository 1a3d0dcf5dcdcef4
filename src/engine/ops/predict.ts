/** Engine op behind `POST /v1/predict`: per-image class, top-k probabilities, optional logits. */
import { readImagesFor } from "../../http/inputs.ts";
import type { Preprocess } from "../../model/classifier.ts";
import { predict } from "../../model/predict.ts";
import { assertFiniteJson } from "../finite.ts";
import { formOf, jsonOutput, loadGuarded, type Op } from "./op.ts";

interface PredictParams {
  top_k: number;
  logits: boolean;
  batch_size: number;
  preprocess?: Preprocess;
}

export const predictOp: Op = async (input, ctx) => {
  const params = input.params as PredictParams;
  const clf = await loadGuarded(input, ctx, params.preprocess);
  try {
    const images = await readImagesFor(formOf(input), input.config, clf);
    const predictions = await predict(clf, images, {
      topK: params.top_k,
      logits: params.logits,
      batchSize: params.batch_size,
      signal: ctx.signal,
    });
    await ctx.guard.check();
    assertFiniteJson(predictions, "predictions");
    return jsonOutput({
      predictions,
      model: { input_shape: clf.inputShape, num_classes: clf.numClasses },
      backend: ctx.backend.name,
    });
  } finally {
    clf.dispose();
  }
};

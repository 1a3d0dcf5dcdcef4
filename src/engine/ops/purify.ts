/**
 * Engine op behind `POST /v1/purify/rounds`: one bounded round; the reply's `model`, `weights`
 * and `state` parts are exactly what the next round sends. Weights are saved and checked only
 * after the round succeeded: a failed or diverged round's weights never leave the engine.
 */
import { readLabelledImages } from "../../http/inputs.ts";
import { jsonPart } from "../../http/reply.ts";
import type { RoundParams } from "../../purify/params.ts";
import { runRound } from "../../purify/round.ts";
import { assertFiniteJson, assertFiniteWeights } from "../finite.ts";
import { formOf, loadGuarded, type Op } from "./op.ts";

export const purifyOp: Op = async (input, ctx) => {
  const params = input.params as RoundParams;
  const clf = await loadGuarded(input, ctx, params.preprocess);
  try {
    const { images, labels } = await readLabelledImages(formOf(input), input.config, clf);
    const result = await runRound(clf, images, labels, params, input.extras.state, {
      maxSteps: input.config.MAX_ROUND_STEPS,
      maxMs: input.config.MAX_ROUND_MS,
      signal: ctx.signal,
    });
    await ctx.guard.check();
    const saved = await clf.save();
    assertFiniteWeights(saved);
    const report = { ...result.report, backend: ctx.backend.name };
    assertFiniteJson(report, "report");
    return {
      json: report,
      parts: [
        {
          name: "model",
          filename: "model.json",
          type: "application/json",
          bytes: saved.modelJson,
        },
        ...saved.weights.map((w) => ({
          name: "weights",
          filename: w.name,
          type: "application/octet-stream",
          bytes: w.bytes,
        })),
        jsonPart("state", result.state),
      ],
      headers: {
        "X-Purify-Done": String(result.done),
        "X-Purify-Progress": String(report.progress),
      },
    };
  } finally {
    clf.dispose();
  }
};

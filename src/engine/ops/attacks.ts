/** Engine op behind `POST /v1/attacks`: adversarial images (`.npy`) and the attack report. */
import type { AttackParams } from "../../attacks/options.ts";
import { runAttack } from "../../attacks/run.ts";
import { readLabelledImages } from "../../http/inputs.ts";
import { encodeNpy } from "../../io/npy.ts";
import { assertFiniteArray, assertFiniteJson } from "../finite.ts";
import { formOf, loadGuarded, type Op } from "./op.ts";

export const attacksOp: Op = async (input, ctx) => {
  const params = input.params as AttackParams;
  const clf = await loadGuarded(input, ctx, params.preprocess);
  try {
    const { images, labels } = await readLabelledImages(formOf(input), input.config, clf);
    const result = await runAttack(clf, images, labels, params, {
      signal: ctx.signal,
      maxCost: input.config.MAX_ATTACK_COST,
      backend: ctx.backend.name,
    });
    await ctx.guard.check();
    // NaN gradients leave NaN pixels behind; name them rather than ship them.
    assertFiniteArray(result.adversarial, "the adversarial images (input gradients)");
    const report = { ...result.report, backend: ctx.backend.name };
    assertFiniteJson(report, "report");
    return {
      json: report,
      parts: [{
        name: "adversarial",
        filename: "adversarial.npy",
        type: "application/octet-stream",
        bytes: encodeNpy({ dtype: "float32", shape: result.shape, data: result.adversarial }),
      }],
      headers: {},
    };
  } finally {
    clf.dispose();
  }
};

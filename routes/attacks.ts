/**
 * `POST /v1/attacks`: model + images + labels + params → adversarial images (`.npy`) and a report
 * of how the model fails. `Accept: application/json` (or `?format=json`) returns the report alone.
 */
import type { Hono } from "hono";
import { AttackParamsSchema } from "../src/attacks/options.ts";
import { runAttack } from "../src/attacks/run.ts";
import type { AppEnv } from "../src/http/env.ts";
import { readForm } from "../src/http/form.ts";
import { loadModel, PARTS, readBundle, readLabelledImages } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import { jsonPart, multipartReply, wantsJson } from "../src/http/reply.ts";
import { encodeNpy } from "../src/io/npy.ts";

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/attacks",
  summary: "Generate adversarial examples (FGSM, PGD L-inf/L2, MI-FGSM, APGD) and report.",
  description:
    "Answers multipart/form-data with parts `adversarial` (.npy, float32 NHWC in [0,1]) and " +
    "`report` (JSON). With `Accept: application/json` or `?format=json`, the report alone. " +
    "Requests whose cost (images × steps × restarts) exceeds MAX_ATTACK_COST are refused (422) " +
    "before any work.",
  parts: [
    ...PARTS.model(),
    PARTS.images(),
    PARTS.labels("true labels: .npy of integers or a JSON array"),
    {
      name: "params",
      description: "attack and options",
      schema: AttackParamsSchema,
      required: true,
    },
  ],
  responseType: "multipart/form-data",
}];

export function register(app: Hono<AppEnv>): void {
  app.post("/v1/attacks", async (c) => {
    const { config, queue, backend } = c.get("services");
    const signal = c.get("signal");
    const form = await readForm(c.req.raw, { maxParts: config.MAX_PARTS });
    const params = await form.json("params", AttackParamsSchema);
    const bundle = await readBundle(form, config);
    const result = await queue.run(async () => {
      const clf = await loadModel(bundle, params.preprocess);
      try {
        const { images, labels } = await readLabelledImages(form, config, clf);
        return await runAttack(clf, images, labels, params, {
          signal,
          maxCost: config.MAX_ATTACK_COST,
        });
      } finally {
        clf.dispose();
      }
    }, signal);
    const report = { ...result.report, backend: backend.name };
    if (wantsJson(c)) return c.json(report);
    return multipartReply([
      {
        name: "adversarial",
        filename: "adversarial.npy",
        type: "application/octet-stream",
        bytes: encodeNpy({ dtype: "float32", shape: result.shape, data: result.adversarial }),
      },
      jsonPart("report", report),
    ]);
  });
}

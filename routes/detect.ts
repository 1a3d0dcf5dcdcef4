/**
 * `POST /v1/detect`: model + images + labels (+ method and options, + optional ground truth
 * `is_poison`) → per image a score and a flag, the threshold rule, per-class flag counts, the
 * suspected target class, and with ground truth precision, recall, F1, AUROC and the ROC curve.
 */
import type { Hono } from "hono";
import { DetectParamsSchema } from "../src/detect/options.ts";
import type { AppEnv } from "../src/http/env.ts";
import { computeHandler } from "../src/http/compute_route.ts";
import { PARTS } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/detect",
  summary: "Flag poisoned images in a (possibly dirty) dataset with a suspect model.",
  description:
    "Methods: pud (Progressive Unified Defense identification), spectral, activation-clustering, " +
    "strip, spectre. Scores are oriented so that higher means more likely poisoned.",
  parts: [
    ...PARTS.model("model.json of the suspect model"),
    PARTS.images(),
    PARTS.labels("labels as given (possibly poisoned): .npy or JSON array"),
    {
      name: "purified_model",
      description: "pud only: model.json of a purified copy (e.g. from /v1/purify/rounds); its " +
        "logits replace the internal adversarial fine-tune",
    },
    {
      name: "purified_weights",
      description: "weight shards of the purified model",
      multiple: true,
    },
    {
      name: "is_poison",
      description: "optional ground truth, 1 = poisoned, per image (.npy or JSON array): adds " +
        "precision, recall, F1 and AUROC",
    },
    {
      name: "params",
      description: "method and options",
      schema: DetectParamsSchema,
      required: true,
    },
  ],
}];

export function register(app: Hono<AppEnv>): void {
  app.post(
    "/v1/detect",
    computeHandler({ op: "detect", params: DetectParamsSchema, optionalBundles: ["purified_"] }),
  );
}

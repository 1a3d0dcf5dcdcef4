/**
 * `POST /v1/detect`: model + images + labels (+ method and options, + optional ground truth
 * `is_poison`) → per image a score and a flag, the threshold rule, per-class flag counts, the
 * suspected target class, and with ground truth precision, recall, F1, AUROC and the ROC curve.
 */
import type { Hono } from "hono";
import { z } from "zod";
import { DetectParamsSchema } from "../src/detect/options.ts";
import type { AppEnv } from "../src/http/env.ts";
import { computeHandler } from "../src/http/compute_route.ts";
import { PARTS } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";

const Rate = z.number().min(0).max(1);

/** The reply of `POST /v1/detect` (what `runDetect` reports, plus the per-image arrays). */
export const DetectReply = z.object({
  // The request schema's variants name the methods, so a new detector is listed here too.
  method: z.enum(DetectParamsSchema.options.map((o) => o.shape.method.value)),
  n: z.int().describe("images scored"),
  flagged: z.int().describe("images flagged as poisoned"),
  flagged_fraction: Rate.describe("flagged / n"),
  suspected_target: z.int().nullable().describe(
    "the class the method believes the backdoor targets; null when it has no opinion",
  ),
  threshold: z.object({
    rule: z.string().describe("how flags were cut from the scores, e.g. mad, fpr, top_fraction"),
    value: z.number().nullable().describe("the rule's parameter or cut"),
    description: z.string(),
  }),
  per_class: z.array(z.object({
    class: z.int().describe("a label present in the request"),
    n: z.int().describe("images with that label"),
    flagged: z.int().describe("of them flagged"),
  })).describe("flag counts per given (possibly poisoned) label"),
  metrics: z.object({
    tp: z.int(),
    fp: z.int(),
    fn: z.int(),
    tn: z.int(),
    precision: Rate.describe("tp / (tp + fp); 0 when nothing is flagged"),
    recall: Rate.describe("tp / (tp + fn)"),
    f1: Rate,
    fpr: Rate.describe("share of clean images flagged"),
    auroc: Rate.nullable().describe("area under the ROC curve of the scores"),
    recall_at_precision_90: Rate.nullable().describe(
      "best recall of any score threshold with precision ≥ 0.9",
    ),
    roc: z.array(z.object({
      threshold: z.number().nullable(),
      fpr: Rate,
      tpr: Rate,
    })).describe("ROC curve points from (0,0) to (1,1)"),
  }).optional().describe("only when the is_poison ground truth was sent"),
  cost: z.number().describe("upper bound of image passes the method needed (MAX_ATTACK_COST unit)"),
  batch_size: z.int().min(1).describe(
    "images per forward pass (pud: per SGD mini-batch), as sent or as resolved for the backend",
  ),
  time_ms: z.number(),
  diagnostics: z.record(z.string(), z.unknown()).optional().describe(
    "method-specific evidence (pud: suspected_classes, all_to_all, evidence per class)",
  ),
  backend: z.string(),
  scores: z.array(z.number()).describe("one per image; higher = more likely poisoned"),
  flags: z.array(z.int().min(0).max(1)).describe("one per image; 1 = flagged"),
  flagged_indices: z.array(z.int()).describe("indices of the flagged images"),
});

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
      contentType: "application/json",
    },
    {
      name: "purified_weights",
      description: "weight shards of the purified model",
      multiple: true,
      contentType: "application/octet-stream",
    },
    {
      name: "is_poison",
      description: "optional ground truth, 1 = poisoned, per image (.npy or JSON array): adds " +
        "precision, recall, F1 and AUROC",
      contentType: "application/x-npy, application/json",
    },
    {
      name: "params",
      description: "method and options",
      schema: DetectParamsSchema,
      required: true,
    },
  ],
  response: DetectReply,
}];

export function register(app: Hono<AppEnv>): void {
  app.post(
    "/v1/detect",
    computeHandler({ op: "detect", params: DetectParamsSchema, optionalBundles: ["purified_"] }),
  );
}

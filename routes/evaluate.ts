/**
 * `POST /v1/evaluate`: model + test images + labels → clean accuracy; + a backdoor (triggered
 * images, or a trigger spec from the lab, and its target) → attack success rate on non-target
 * classes; + attack options → robust accuracy under PGD. Overall and per class.
 */
import type { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../src/http/env.ts";
import { computeHandler } from "../src/http/compute_route.ts";
import { PARTS } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import { EvaluateParamsSchema } from "../src/metrics/evaluate.ts";

/** The figures a pipeline reads first, next to the detailed reports. */
const EvaluateReply = z.object({
  clean_accuracy: z.number().nullable(),
  attack_success_rate: z.number().nullable().optional(),
  clean_target_rate: z.number().nullable().optional().describe(
    "share of clean test images of other classes already predicted as the backdoor target " +
      "(no trigger): the floor of the attack success rate",
  ),
  robust_accuracy: z.number().nullable().optional(),
  clean: z.unknown(),
  backdoor: z.unknown().optional(),
  robust: z.unknown().optional(),
  ms: z.number(),
  backend: z.string(),
});

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/evaluate",
  summary: "Clean accuracy, backdoor attack success rate and robust accuracy of a model.",
  description: "Backdoor ASR counts only images whose true class is not the target (the lab's " +
    "test_bd_x.npy with test_bd_y.npy as 'backdoor_labels' already is). Robust accuracy uses " +
    "untargeted L-inf PGD (default 20 steps, eps 8/255); its cost (images × steps × restarts) " +
    "is checked against MAX_ATTACK_COST before any work (422 beyond).",
  parts: [
    ...PARTS.model(),
    PARTS.images("clean test images: one .npy (NHWC) or PNG/JPEG files"),
    PARTS.labels("their true classes (.npy or JSON array)"),
    {
      name: "backdoor_images",
      description: "triggered images (.npy or PNG/JPEG); needs params.backdoor",
      multiple: true,
    },
    {
      name: "backdoor_labels",
      description: "the class each triggered image is sent to (e.g. the lab's test_bd_y.npy)",
    },
    {
      name: "backdoor_source_labels",
      description: "the true class of each triggered image: images of the target class are " +
        "left out",
    },
    { name: "params", description: "what to evaluate", schema: EvaluateParamsSchema },
  ],
  response: EvaluateReply,
}];

export function register(app: Hono<AppEnv>): void {
  app.post("/v1/evaluate", computeHandler({ op: "evaluate", params: EvaluateParamsSchema }));
}

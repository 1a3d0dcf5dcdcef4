/**
 * `POST /v1/evaluate`: model + test images + labels → clean accuracy; + a backdoor (triggered
 * images, or a trigger spec from the lab, and its target) → attack success rate on non-target
 * classes; + attack options → robust accuracy under PGD or the AutoAttack-style ensemble, with a
 * gradient-masking check. Overall and per class.
 */
import type { Hono } from "hono";
import type { AppEnv } from "../src/http/env.ts";
import { computeHandler } from "../src/http/compute_route.ts";
import { PARTS } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import { EvaluateParamsSchema } from "../src/metrics/evaluate_options.ts";
import { EvaluateReplySchema } from "../src/metrics/evaluate_reply.ts";

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/evaluate",
  summary: "Clean accuracy, backdoor attack success rate and robust accuracy of a model.",
  description: "Backdoor ASR counts only images whose true class is not the target (the lab's " +
    "test_bd_x.npy with test_bd_y.npy as 'backdoor_labels' already is). Robust accuracy uses " +
    "untargeted L-inf PGD (default 20 steps, eps 8/255, plus a gradient-masking check) or, " +
    'with {"attack": {"attack": "autoattack"}}, the ensemble APGD-CE → APGD-T → Square with ' +
    "robust accuracy after each member and the worst case per image; its cost (image passes, " +
    "Square's queries as forward passes) is checked against MAX_ATTACK_COST before any work " +
    "(422 beyond).",
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
      description: "the true class of each triggered image: images of their own target class " +
        "are left out, and the per-class figures are grouped by it",
    },
    { name: "params", description: "what to evaluate", schema: EvaluateParamsSchema },
  ],
  response: EvaluateReplySchema,
}];

export function register(app: Hono<AppEnv>): void {
  app.post("/v1/evaluate", computeHandler({ op: "evaluate", params: EvaluateParamsSchema }));
}

/**
 * `POST /v1/attacks`: model + images + labels + params → adversarial images (`.npy`) and a report
 * of how the model fails. `Accept: application/json` (or `?format=json`) returns the report alone.
 */
import type { Hono } from "hono";
import { AttackParamsSchema } from "../src/attacks/options.ts";
import type { AppEnv } from "../src/http/env.ts";
import { computeHandler } from "../src/http/compute_route.ts";
import { PARTS } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import { FormatQuery, partQuery } from "../src/http/reply.ts";

/** The reply's parts, each of which `?part=NAME` answers alone. */
const REPLY_PARTS = ["adversarial", "report"] as const;
/** `Accept: application/x-npy` answers the adversarial images alone. */
const ACCEPTS = { "application/x-npy": "adversarial" };

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/attacks",
  summary: "Generate adversarial examples (FGSM, PGD L-inf/L2, MI-FGSM, APGD) and report.",
  description:
    "Answers multipart/form-data with parts `adversarial` (.npy, float32 NHWC in [0,1]) and " +
    "`report` (JSON). With `Accept: application/json` or `?format=json`, the report alone; " +
    "with `Accept: application/x-npy`, the .npy alone; `?part=adversarial` or `?part=report` " +
    "answers that part alone with its own content type. " +
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
  query: [
    { name: "format", description: "report alone as JSON", schema: FormatQuery },
    { name: "part", description: "one part alone", schema: partQuery(REPLY_PARTS) },
  ],
  replyParts: [
    {
      name: "adversarial",
      filename: "adversarial.npy",
      contentType: "application/x-npy",
      description: "the adversarial images, float32 NHWC in [0,1], each pixel within eps of its " +
        "input (Accept: application/x-npy or ?part=adversarial: this part alone)",
    },
    {
      name: "report",
      filename: "report.json",
      contentType: "application/json",
      description: "per image the clean and adversarial prediction, success, L-inf and L2 " +
        "norms; overall success rate, clean and robust accuracy, time_ms, backend " +
        "(?format=json: this part alone)",
    },
  ],
}];

export function register(app: Hono<AppEnv>): void {
  app.post(
    "/v1/attacks",
    computeHandler({
      op: "attacks",
      params: AttackParamsSchema,
      jsonAlone: true,
      replyParts: REPLY_PARTS,
      accepts: ACCEPTS,
    }),
  );
}

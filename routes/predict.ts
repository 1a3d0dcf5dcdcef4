/** `POST /v1/predict`: model + images → per-image class, top-k probabilities, optional logits. */
import type { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../src/http/env.ts";
import { computeHandler } from "../src/http/compute_route.ts";
import { PARTS } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import { PreprocessSchema } from "../src/model/preprocess_schema.ts";

export const PredictParams = z.object({
  top_k: z.number().int().min(1).max(1000).default(5).describe("classes listed per image"),
  logits: z.boolean().default(false).describe("also return the raw logits per image"),
  batch_size: z.number().int().min(1).max(4096).default(256).describe("images per forward pass"),
  preprocess: PreprocessSchema.optional(),
}).strict();

const PredictResponse = z.object({
  predictions: z.array(z.object({
    index: z.number().int(),
    class: z.number().int(),
    top: z.array(z.object({ class: z.number().int(), probability: z.number() })),
    logits: z.array(z.number()).optional(),
  })),
  model: z.object({ input_shape: z.array(z.number()), num_classes: z.number() }),
  backend: z.string(),
  time_ms: z.number(),
});

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/predict",
  summary: "Classify images with a TF.js LayersModel.",
  parts: [
    ...PARTS.model(),
    PARTS.images(),
    { name: "params", description: "options", schema: PredictParams },
  ],
  response: PredictResponse,
}];

export function register(app: Hono<AppEnv>): void {
  app.post(
    "/v1/predict",
    computeHandler({
      op: "predict",
      params: PredictParams,
      reply: (c, out, startedAt) =>
        c.json({ ...out.json as object, time_ms: Math.round(performance.now() - startedAt) }),
    }),
  );
}

/** `POST /v1/predict`: model + images → per-image class, top-k probabilities, optional logits. */
import type { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../src/http/env.ts";
import { readForm } from "../src/http/form.ts";
import { loadModel, PARTS, readBundle, readImagesFor } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import { predict } from "../src/model/predict.ts";
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
  app.post("/v1/predict", async (c) => {
    const { config, queue, backend } = c.get("services");
    const signal = c.get("signal");
    const t0 = performance.now();
    const form = await readForm(c.req.raw, { maxParts: config.MAX_PARTS });
    const params = await form.json("params", PredictParams);
    const bundle = await readBundle(form, config);
    const body = await queue.run(async () => {
      const clf = await loadModel(bundle, params.preprocess);
      try {
        const images = await readImagesFor(form, config, clf);
        const predictions = await predict(clf, images, {
          topK: params.top_k,
          logits: params.logits,
          batchSize: params.batch_size,
          signal,
        });
        return {
          predictions,
          model: { input_shape: clf.inputShape, num_classes: clf.numClasses },
          backend: backend.name,
          time_ms: Math.round(performance.now() - t0),
        };
      } finally {
        clf.dispose();
      }
    }, signal);
    return c.json(body);
  });
}

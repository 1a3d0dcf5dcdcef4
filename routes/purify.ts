/**
 * Progressive purification, one bounded round per call:
 * - `GET /v1/purify/schedule`: the default schedule (or `?preset=published`) as JSON, for clients
 *   to inspect, change and send back as `params.schedule`.
 * - `POST /v1/purify/rounds`: model + weights + extra images + labels + params (+ the previous
 *   round's `state`) → multipart `model`, `weights`, `state` (exactly what the next call sends)
 *   and `report`. A round is stateless on the server, so a retried round is safe.
 */
import type { Hono } from "hono";
import { z } from "zod";
import { ValidationError } from "../src/errors.ts";
import type { AppEnv } from "../src/http/env.ts";
import { computeHandler } from "../src/http/compute_route.ts";
import { parseJson } from "../src/http/form.ts";
import { PARTS } from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import { partQuery } from "../src/http/reply.ts";
import { RoundParamsSchema } from "../src/purify/params.ts";
import { PRESETS, ScheduleSchema } from "../src/purify/schedule.ts";

const PresetQuery = z.enum(Object.keys(PRESETS) as [keyof typeof PRESETS]).describe(
  "the preset whose schedule to return (default 'default')",
);
/** A round's reply parts, each of which `?part=NAME` answers alone. */
const REPLY_PARTS = ["model", "weights", "state", "report"] as const;

export const operations: Operation[] = [
  {
    method: "get",
    path: "/v1/purify/schedule",
    summary: "The purification schedule of a preset (default 'default'; ?preset=published).",
    description: "Every knob of the progressive schedule. Change it and send it back as " +
      "params.schedule in the first round.",
    query: [{ name: "preset", description: "schedule preset", schema: PresetQuery }],
    response: ScheduleSchema,
  },
  {
    method: "post",
    path: "/v1/purify/rounds",
    summary: "One bounded round of Progressive Unified Defense.",
    description: "Send the model, the extra set and params; from the second round on also the " +
      "'state' part of the previous reply, with the 'model' and 'weights' it returned. The " +
      "reply is multipart/form-data: 'model' (model.json), 'weights' (weights.bin), 'state' " +
      "(state.json) and 'report' (report.json: stage, progress, losses, clean-set size, flagged " +
      "images, timings, done). Repeat until report.done. A round does at most " +
      "min(params.max_steps, MAX_ROUND_STEPS) units of work within min(params.max_ms, " +
      "MAX_ROUND_MS). A state that was edited, truncated, or belongs to another dataset or " +
      "model is refused with 400/422. `?part=NAME` answers one part alone (e.g. " +
      "`?part=report`); `deno task unpack REPLY DIR` writes every part of a saved reply to " +
      "DIR as the next round sends it.",
    parts: [
      ...PARTS.model("model.json (the previous round's after the first)"),
      PARTS.images("the extra set: one .npy (NHWC) or PNG/JPEG files, same in every round"),
      PARTS.labels("its labels (.npy or JSON array)"),
      {
        name: "state",
        description: "state.json of the previous round; absent in the first",
        contentType: "application/json",
      },
      { name: "params", description: "round params", schema: RoundParamsSchema },
    ],
    query: [{ name: "part", description: "one part alone", schema: partQuery(REPLY_PARTS) }],
    replyParts: [
      {
        name: "model",
        filename: "model.json",
        contentType: "application/json",
        description: "the model after this round: send it as 'model' in the next round",
      },
      {
        name: "weights",
        filename: "weights.bin",
        contentType: "application/octet-stream",
        description: "its weights: send them as 'weights' in the next round",
      },
      {
        name: "state",
        filename: "state.json",
        contentType: "application/json",
        description: "the schedule, cursor, the infected model's logits, scores, flags, " +
          "optimizer momentum and teacher weights: send it as 'state' in the next round, " +
          "unchanged (an edited state is refused)",
      },
      {
        name: "report",
        filename: "report.json",
        contentType: "application/json",
        description: "stage, progress (0..1), losses, clean-set size, flagged images, " +
          "timings, done (also in the X-Purify-Done and X-Purify-Progress headers)",
      },
    ],
  },
];

export function register(app: Hono<AppEnv>): void {
  app.get("/v1/purify/schedule", (c) => {
    const q = PresetQuery.safeParse(c.req.query("preset") ?? "default");
    if (!q.success) {
      throw new ValidationError(
        `unknown preset '${String(c.req.query("preset")).slice(0, 64)}'; allowed: ${
          PresetQuery.options.join(", ")
        }`,
      );
    }
    return c.json(PRESETS[q.data]());
  });

  app.post(
    "/v1/purify/rounds",
    computeHandler({
      op: "purify",
      params: RoundParamsSchema,
      replyParts: REPLY_PARTS,
      extras: async (form) => {
        const part = await form.file("state");
        // Parsed here, validated by the round against the model and dataset it is sent with.
        return {
          state: part
            ? parseJson(new TextDecoder().decode(part.bytes), z.unknown(), "state")
            : undefined,
        };
      },
    }),
  );
}

/**
 * The `params` of one purification round (`POST /v1/purify/rounds`). The schedule and seed are read
 * in the first round and then travel in the state; later rounds may repeat them (they must then
 * match) or leave them out. Budgets apply to each round and may only tighten the service's own
 * limits (`MAX_ROUND_STEPS`, `MAX_ROUND_MS`).
 *
 * @module
 */
import { z } from "zod";
import { ValidationError } from "../errors.ts";
import { PreprocessSchema } from "../model/preprocess_schema.ts";
import { PRESETS, type Schedule, ScheduleSchema } from "./schedule.ts";

export const RoundParamsSchema = z.object({
  schedule: z.union([z.enum(["default", "published"]), ScheduleSchema]).optional().describe(
    "a preset name or a full schedule; read in the first round (default 'default')",
  ),
  seed: z.int().min(0).max(2 ** 31 - 1).optional().describe(
    "seeds shuffles, PGD random starts and the random first clean set; read in the first " +
      "round (default 0)",
  ),
  max_steps: z.int().min(1).max(1_000_000).optional().describe(
    "most units of work (optimizer steps, reconstruction steps, scoring batches) this round may " +
      "run; the service's MAX_ROUND_STEPS applies when lower",
  ),
  max_ms: z.int().min(1).max(86_400_000).optional().describe(
    "time budget of this round's work in ms; the service's MAX_ROUND_MS applies when lower",
  ),
  preprocess: PreprocessSchema.optional(),
}).strict().describe("one bounded round of Progressive Unified Defense");

export type RoundParams = z.output<typeof RoundParamsSchema>;

/** Validates round params. @throws {ValidationError} naming each offending field. */
export function parseRoundParams(json: unknown): RoundParams {
  const r = RoundParamsSchema.safeParse(json ?? {});
  if (!r.success) {
    throw ValidationError.fromZod(r.error, { label: "invalid purify params", root: "params" });
  }
  return r.data;
}

/** The schedule params ask for: a preset by name, a full schedule, or the default. */
export function resolveSchedule(s: RoundParams["schedule"]): Schedule {
  if (s === undefined) return PRESETS.default();
  if (typeof s === "string") return PRESETS[s]();
  return s;
}

/**
 * `params` of `POST /v1/evaluate`: one zod schema (also the OpenAPI schema) with every default in
 * one place, and its translation to the options of `evaluate()` and `robustAccuracy()`.
 * Cross-field rules that need the parts, the model or the images live in `run_evaluate.ts`.
 *
 * @module
 */
import { z } from "zod";
import { VERSIONS } from "../attacks/autoattack.ts";
import { MembersSchema } from "../attacks/options.ts";
import { DEFAULT_EPS } from "../attacks/types.ts";
import { BATCH_MAXIMA, batchDefaultText } from "../model/batch_defaults.ts";
import { PreprocessSchema } from "../model/preprocess_schema.ts";
import { TriggerSpecSchema } from "../triggers/trigger.ts";
import { PGD_STEPS, type RobustOptions } from "./robust_accuracy.ts";

const eps = z.number().gt(0).max(1).default(DEFAULT_EPS).describe(
  "L-inf budget in [0,1] pixel units (default 8/255)",
);
const seed = z.int().min(0).max(2 ** 31 - 1).default(0).describe(
  "seeds the random starts and Square's draws (default 0)",
);
const maxImages = z.int().min(1).max(1_000_000).optional().describe(
  "attack only the first max_images test images (default all)",
);
const maskingCheck = z.boolean().default(true).describe(
  "PGD only: also run the gradient-masking sweeps (PGD with a quarter of the steps, PGD at " +
    "2·eps, and a short Square Attack on the images PGD left correct), reported as " +
    "robust.gradient_masking; the ensemble's check comes from its own Square member (default true)",
);

export const PgdEvalSchema = z.object({
  attack: z.literal("pgd").default("pgd").describe("untargeted L-inf PGD (default)"),
  eps,
  steps: z.int().min(1).max(1000).default(PGD_STEPS).describe(`PGD steps (default ${PGD_STEPS})`),
  step_size: z.number().gt(0).max(1).optional().describe("step size (default eps/4)"),
  restarts: z.int().min(1).max(20).default(1).describe("random restarts (default 1)"),
  seed,
  max_images: maxImages,
  masking_check: maskingCheck,
}).strict();

export const AutoAttackEvalSchema = z.object({
  attack: z.literal("autoattack").describe(
    "AutoAttack-style ensemble (APGD-CE → APGD-T → Square, L-inf): robust accuracy after each " +
      "member and the worst case per image",
  ),
  version: z.enum(["standard", "fast"]).default("standard").describe(
    `standard: ${VERSIONS.standard.square.queries} Square queries, ` +
      `${VERSIONS.standard["apgd-t"].targets} APGD-T targets; fast: ` +
      `${VERSIONS.fast.square.queries} queries, ${VERSIONS.fast["apgd-t"].targets} targets ` +
      "(default standard)",
  ),
  members: MembersSchema.optional().describe(
    "run only these members, in the standard order (default all)",
  ),
  eps,
  seed,
  max_images: maxImages,
}).strict();

export const EvaluateParamsSchema = z.object({
  backdoor: z.object({
    target: z.int().min(0).max(100_000).optional().describe(
      "the class the backdoor sends images to; required with 'trigger' or with " +
        "'backdoor_images' sent without 'backdoor_labels'",
    ),
    trigger: TriggerSpecSchema.optional().describe(
      "apply this trigger to the test images of other classes; absent: send triggered images " +
        "as the 'backdoor_images' part (with 'backdoor_labels', each image's target, and/or " +
        "'backdoor_source_labels', their true classes, which leave out images of the target " +
        "class and group the per-class figures by source class)",
    ),
  }).strict().optional().describe("measure the attack success rate of a backdoor"),
  attack: z.union([PgdEvalSchema, AutoAttackEvalSchema]).optional().describe(
    'measure robust accuracy: {} or {"attack": "pgd", ...} for PGD-20, ' +
      '{"attack": "autoattack", "version": "fast"} for the ensemble',
  ),
  batch_size: z.int().min(1).max(BATCH_MAXIMA.evaluate).optional().describe(
    `images per forward pass, and attacked together for robust accuracy ` +
      `(${batchDefaultText("evaluate")}; the reply's batch_size gives the one used)`,
  ),
  preprocess: PreprocessSchema.optional(),
}).strict().describe("what to evaluate");

export type EvaluateParams = z.output<typeof EvaluateParamsSchema>;
export type EvaluateParamsInput = z.input<typeof EvaluateParamsSchema>;

/** The robust-accuracy options of parsed params (undefined when no attack was asked for). */
export function attackOptions(
  p: EvaluateParams,
): (RobustOptions & { maxImages?: number }) | undefined {
  const a = p.attack;
  if (a === undefined) return undefined;
  if (a.attack === "autoattack") {
    return {
      attack: "autoattack",
      eps: a.eps,
      version: a.version,
      members: a.members,
      seed: a.seed,
      maxImages: a.max_images,
    };
  }
  return {
    attack: "pgd",
    eps: a.eps,
    steps: a.steps,
    stepSize: a.step_size,
    restarts: a.restarts,
    seed: a.seed,
    maxImages: a.max_images,
    maskingCheck: a.masking_check,
  };
}

/**
 * The JSON reply of `POST /v1/evaluate` as a zod schema: the figures a pipeline reads first, then
 * the detailed reports. It is the OpenAPI response schema; `run_evaluate.ts` builds the reply.
 *
 * @module
 */
import { z } from "zod";
import { MEMBERS } from "../attacks/autoattack.ts";

const share = z.number().min(0).max(1);

const ClassFigureSchema = z.object({
  class: z.int().min(0),
  n: z.int().min(0).describe("images of this class"),
  value: share.nullable().describe("share of them meeting the metric; null when n is 0"),
});

const AccuracySchema = z.object({
  accuracy: share.nullable(),
  correct: z.int().min(0),
  total: z.int().min(0),
  per_class: z.array(ClassFigureSchema),
});

const AsrSchema = z.object({
  target: z.int().min(0).nullable().describe("the backdoor's target; null when per image"),
  asr: share.nullable(),
  hits: z.int().min(0),
  total: z.int().min(0),
  per_class: z.array(ClassFigureSchema).optional(),
  per_class_by: z.enum(["source", "target"]).optional().describe(
    "source: per true class of the triggered images (when their source labels were sent); " +
      "target: per target class",
  ),
  clean_target_rate: share.nullable().optional(),
});

const SweepPointSchema = z.object({
  steps: z.int().min(1),
  eps: z.number(),
  robust_accuracy: share,
});

export const MaskingCheckSchema = z.object({
  gradient_masking_suspected: z.boolean(),
  reasons: z.array(z.string()).describe("each symptom found, with its figures"),
  figures: z.object({
    n: z.int().min(0),
    white_box_robust_accuracy: share.nullable(),
    worst_case_robust_accuracy: share.nullable(),
    black_box_only: z.int().min(0).nullable().describe(
      "images only the black-box attack (Square) broke",
    ),
    black_box_only_share: share.nullable(),
    steps_sweep: z.array(SweepPointSchema).nullable(),
    eps_sweep: z.array(SweepPointSchema).nullable(),
  }),
  thresholds: z.object({
    black_box_share: share,
    black_box_min: z.int().min(0),
    sweep_tolerance: share,
  }),
}).describe("the gradient-masking check");

const MemberSchema = z.object({
  member: z.enum(MEMBERS),
  black_box: z.boolean(),
  attacked: z.int().min(0).describe("images it ran on (those still correct)"),
  broken: z.int().min(0).describe("images it broke first"),
  robust_accuracy: share.describe("share still correct after this member and every earlier one"),
  queries: z.int().min(0).describe("gradient evaluations (APGD) or forward passes (Square)"),
  time_ms: z.number().min(0),
});

const RobustSchema = z.object({
  robust_accuracy: share.nullable(),
  robust: z.int().min(0),
  total: z.int().min(0),
  attack: z.union([
    z.object({
      name: z.literal("pgd"),
      norm: z.literal("linf"),
      eps: z.number(),
      steps: z.int(),
      step_size: z.number(),
      restarts: z.int(),
    }),
    z.object({
      name: z.literal("autoattack"),
      norm: z.literal("linf"),
      eps: z.number(),
      version: z.enum(["standard", "fast"]),
      members: z.array(z.enum(MEMBERS)),
    }),
  ]),
  per_class: z.array(ClassFigureSchema),
  members: z.array(MemberSchema).optional().describe("the ensemble: robust accuracy per member"),
  worst_case_robust_accuracy: share.nullable(),
  gradient_masking: MaskingCheckSchema,
});

export const EvaluateReplySchema = z.object({
  clean_accuracy: share.nullable(),
  attack_success_rate: share.nullable().optional(),
  clean_target_rate: share.nullable().optional().describe(
    "share of clean test images of other classes already predicted as the backdoor target " +
      "(no trigger): the floor of the attack success rate",
  ),
  robust_accuracy: share.nullable().optional().describe(
    "under the attack asked for (the ensemble: its worst case)",
  ),
  worst_case_robust_accuracy: share.nullable().optional().describe(
    "the lowest robust accuracy any attack of the report measured (PGD: with the Square check)",
  ),
  gradient_masking_suspected: z.boolean().optional(),
  clean: AccuracySchema,
  backdoor: AsrSchema.optional(),
  robust: RobustSchema.optional(),
  time_ms: z.number().min(0),
  batch_size: z.int().min(1).describe(
    "images per forward pass and per attack batch, as sent or as resolved for the backend",
  ),
  backend: z.string(),
});

export type EvaluateReply = z.infer<typeof EvaluateReplySchema>;

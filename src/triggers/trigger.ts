/**
 * Backdoor triggers as data: a {@link TriggerSpec} is a small JSON document (type, parameters,
 * seed) that fully determines the trigger, so the same trigger can be rebuilt by the lab, sent in
 * HTTP params (`POST /v1/evaluate`) and written next to a backdoored model as `trigger.json`.
 *
 * Every trigger is a pure function on an NHWC `Float32Array` batch with pixels in [0,1]; it never
 * mutates its input and its output stays in [0,1].
 *
 * @module
 */
import { z } from "zod";
import { ShapeMismatchError, ValidationError } from "../errors.ts";
import type { ImageBatch } from "../io/images.ts";
import { applyBadNets } from "./badnets.ts";
import { applyBlend } from "./blend.ts";
import { applySig } from "./sig.ts";
import { applyWaNet } from "./wanet.ts";

const SeedSchema = z.int().min(0).max(2 ** 31 - 1).default(0).describe(
  "seed of the trigger's random parts (pattern, warp field); same seed, same trigger",
);

/** BadNets (Gu et al., "BadNets: Identifying Vulnerabilities in the ML Supply Chain", 2017). */
export const BadNetsSpecSchema = z.object({
  type: z.literal("badnets"),
  size: z.int().min(1).max(64).default(3).describe("side of the square patch, in pixels"),
  position: z.enum(["bottom-right", "bottom-left", "top-right", "top-left"]).default(
    "bottom-right",
  ).describe("corner the patch sits in"),
  margin: z.int().min(0).max(64).default(0).describe("pixels between the patch and its corner"),
  pattern: z.enum(["checkerboard", "solid"]).default("checkerboard").describe(
    "checkerboard: cells alternate value and 0, starting with value; solid: every cell is value",
  ),
  value: z.number().min(0).max(1).default(1).describe("bright cells' pixel value, in [0,1]"),
  seed: SeedSchema.describe("unused: BadNets is deterministic; kept so every spec has a seed"),
}).strict();

/** Blend (Chen et al., "Targeted Backdoor Attacks on Deep Learning Systems Using Data Poisoning"). */
export const BlendSpecSchema = z.object({
  type: z.literal("blend"),
  alpha: z.number().gt(0).max(1).default(0.1).describe(
    "blend ratio: x' = (1 - alpha) x + alpha pattern; 0.1-0.2 is customary",
  ),
  pattern: z.literal("noise").default("noise").describe(
    "uniform noise in [0,1), one value per pixel and channel, drawn from seed",
  ),
  seed: SeedSchema,
}).strict();

/** WaNet (Nguyen & Tran, "WaNet - Imperceptible Warping-based Backdoor Attack", ICLR 2021). */
export const WaNetSpecSchema = z.object({
  type: z.literal("wanet"),
  k: z.int().min(2).max(32).default(4).describe("side of the random control grid"),
  strength: z.number().min(0).max(16).default(0.5).describe(
    "warp strength s; the largest displacements are about s/2 pixels times the field's peak",
  ),
  seed: SeedSchema,
}).strict();

/** SIG (Barni, Kallas & Tondi, ICIP 2019), the clean-label sinusoidal signal. */
export const SigSpecSchema = z.object({
  type: z.literal("sig"),
  delta: z.number().gt(0).max(1).default(20 / 255).describe(
    "amplitude Δ of the sinusoid in [0,1] pixel units (default 20/255, the paper's)",
  ),
  frequency: z.number().gt(0).max(64).default(6).describe(
    "periods across the image width (default 6, the paper's)",
  ),
  seed: SeedSchema.describe("unused: SIG is deterministic; kept so every spec has a seed"),
}).strict();

/** One trigger, discriminated by `type`. */
export const TriggerSpecSchema = z.discriminatedUnion("type", [
  BadNetsSpecSchema,
  BlendSpecSchema,
  WaNetSpecSchema,
  SigSpecSchema,
]).describe("a backdoor trigger: its type, parameters and seed");

/** A parsed spec: every default filled in. */
export type TriggerSpec = z.output<typeof TriggerSpecSchema>;
export type BadNetsSpec = z.output<typeof BadNetsSpecSchema>;
export type BlendSpec = z.output<typeof BlendSpecSchema>;
export type WaNetSpec = z.output<typeof WaNetSpecSchema>;
export type SigSpec = z.output<typeof SigSpecSchema>;

/**
 * Validates a JSON value as a trigger spec and fills in defaults.
 *
 * @throws {ValidationError} naming each offending field and what it allows.
 */
export function parseTriggerSpec(json: unknown): TriggerSpec {
  const parsed = TriggerSpecSchema.safeParse(json);
  if (!parsed.success) {
    throw ValidationError.fromZod(parsed.error, { label: "invalid trigger spec", root: "trigger" });
  }
  return parsed.data;
}

/**
 * Checks that `batch.data` holds exactly `N·H·W·C` values of a valid NHWC shape.
 *
 * @throws {ShapeMismatchError} otherwise.
 */
export function checkBatch(batch: ImageBatch): void {
  const { shape, data } = batch;
  const ok = shape.length === 4 && shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
    shape[1] > 0 && shape[2] > 0 && shape[3] > 0;
  if (!ok) {
    throw new ShapeMismatchError(
      `a trigger needs an [N, H, W, C] batch with H, W, C >= 1; got [${shape.join(", ")}]`,
    );
  }
  const n = shape[0] * shape[1] * shape[2] * shape[3];
  if (data.length !== n) {
    throw new ShapeMismatchError(
      `batch data has ${data.length} values but shape [${shape.join(", ")}] needs ${n}`,
    );
  }
}

/**
 * Applies the trigger `spec` (already parsed, see {@link parseTriggerSpec}) to every image of
 * `batch` and returns a new array; `batch` is left untouched.
 *
 * @throws {ShapeMismatchError} for a malformed batch or a BadNets patch larger than the image.
 */
export function applyTrigger(spec: TriggerSpec, batch: ImageBatch): Float32Array {
  checkBatch(batch);
  switch (spec.type) {
    case "badnets":
      return applyBadNets(spec, batch);
    case "blend":
      return applyBlend(spec, batch);
    case "wanet":
      return applyWaNet(spec, batch);
    case "sig":
      return applySig(spec, batch);
  }
}

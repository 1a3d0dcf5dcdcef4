/**
 * The attack request's `params`: one zod schema, a union discriminated by `attack`, which is also
 * the OpenAPI schema (`z.toJSONSchema`). Unknown keys are rejected, so a misspelt option is a 400
 * rather than a silently ignored default. Cross-field rules that need the images or the model
 * (target vs labels, class counts, cost) live in `run.ts`.
 */
import { z } from "zod";
import { BATCH_MAXIMA, batchDefaultText } from "../model/batch_defaults.ts";
import { PreprocessSchema } from "../model/preprocess_schema.ts";
import { autoAttackCostPerImage, MEMBERS, VERSIONS } from "./autoattack.ts";
import { DEFAULT_EPS } from "./types.ts";

const eps = z.number().gt(0).lte(1).default(DEFAULT_EPS).describe(
  "perturbation budget in [0,1] pixel units: per pixel for linf, per image for l2 (default 8/255)",
);
const steps = (def: number) =>
  z.number().int().min(1).max(1000).default(def).describe(
    `gradient steps per restart (default ${def})`,
  );
const stepSize = (def: string) =>
  z.number().gt(0).lte(1).optional().describe(`step size in pixel units (default ${def})`);
const restarts = z.number().int().min(1).max(20).default(1).describe(
  "runs from independent random starts; the best per image is kept (default 1)",
);
const randomStart = z.boolean().default(true).describe(
  "start from a random point of the eps-ball instead of the image (default true)",
);
const loss = z.enum(["ce", "margin", "dlr"]).default("ce").describe(
  "ce: cross-entropy; margin: max_{j≠y} z_j − z_y, or z_t − max_{j≠t} z_j when targeted; dlr: " +
    "−(z_y − max_{i≠y} z_i)/(z_π1 − z_π3), targeted −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2) " +
    "(Croce & Hein 2020; needs 3 classes, 4 targeted) (default ce)",
);
const target = z.union([
  z.number().int().min(0),
  z.array(z.number().int().min(0)).min(1),
]).optional().describe(
  "targeted attack: one class for every image or one per image; success means the prediction " +
    "equals the target. Absent: untargeted (success means the prediction differs from the label)",
);
const seed = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0).describe(
  "seeds the random starts; the same seed and batch_size reproduce the same output (default 0)",
);
const batchSize = z.number().int().min(1).max(BATCH_MAXIMA.attack).optional().describe(
  `images attacked together (${batchDefaultText("attack")}; the report's params give the one used)`,
);
const earlyStop = z.boolean().default(true).describe(
  "stop changing an image once it succeeds, and stop when all have (default true)",
);
const preprocess = PreprocessSchema.optional();

/** Fields every attack takes. */
const common = {
  eps,
  loss,
  target,
  seed,
  batch_size: batchSize,
  preprocess,
};

export const FgsmParamsSchema = z.object({
  attack: z.literal("fgsm").describe("FGSM, Goodfellow et al. 2015: one signed-gradient step"),
  norm: z.literal("linf").default("linf").describe("FGSM is an L-inf attack"),
  ...common,
}).strict();

export const PgdParamsSchema = z.object({
  attack: z.literal("pgd").describe("PGD, Madry et al. 2018"),
  norm: z.enum(["linf", "l2"]).default("linf").describe("threat model (default linf)"),
  steps: steps(10),
  step_size: stepSize("2.5·eps/steps, i.e. eps/4 at 10 steps"),
  restarts,
  random_start: randomStart,
  early_stop: earlyStop,
  ...common,
}).strict();

export const MifgsmParamsSchema = z.object({
  attack: z.literal("mifgsm").describe("MI-FGSM, Dong et al. 2018: momentum iterative FGSM"),
  norm: z.literal("linf").default("linf").describe("MI-FGSM is an L-inf attack"),
  steps: steps(10),
  step_size: stepSize("eps/steps"),
  momentum: z.number().min(0).max(10).default(1.0).describe(
    "decay μ of the accumulated L1-normalised gradient (default 1.0; 0 is I-FGSM)",
  ),
  early_stop: earlyStop,
  ...common,
}).strict();

export const ApgdParamsSchema = z.object({
  attack: z.literal("apgd").describe(
    "APGD, Croce & Hein 2020: step-size-free PGD with momentum (APGD-CE; loss margin for a " +
      "DLR-like variant)",
  ),
  norm: z.enum(["linf", "l2"]).default("linf").describe("threat model (default linf)"),
  steps: steps(100),
  step_size: stepSize("2·eps, the initial step; it halves at checkpoints where progress stalls"),
  restarts,
  random_start: randomStart,
  momentum: z.number().min(0).max(1).default(0.75).describe("momentum α (default 0.75)"),
  rho: z.number().min(0).max(1).default(0.75).describe(
    "halve the step when fewer than this fraction of steps since the last checkpoint raised the " +
      "loss (default 0.75)",
  ),
  early_stop: earlyStop,
  ...common,
}).strict();

export const SquareParamsSchema = z.object({
  attack: z.literal("square").describe(
    "Square Attack, Andriushchenko et al. 2020: score-based black-box random search (no " +
      "gradients) on the logit margin",
  ),
  norm: z.enum(["linf", "l2"]).default("linf").describe("threat model (default linf)"),
  queries: z.number().int().min(1).max(100_000).default(5000).describe(
    "forward passes per image and restart, the start included (default 5000, the paper's)",
  ),
  p_init: z.number().gt(0).lte(1).default(0.8).describe(
    "share of the image the first square windows cover; halved on the paper's schedule " +
      "(default 0.8)",
  ),
  restarts: z.number().int().min(1).max(20).default(1).describe(
    "runs from fresh starts on the images not yet broken (default 1)",
  ),
  eps,
  target,
  seed,
  batch_size: batchSize,
  preprocess,
}).strict();

/** The ensemble members to run, each at most once (they always run in the standard order). */
export const MembersSchema = z.array(z.enum(MEMBERS)).min(1).max(MEMBERS.length).refine(
  (m) => new Set(m).size === m.length,
  "members must not repeat",
);

export const AutoAttackParamsSchema = z.object({
  attack: z.literal("autoattack").describe(
    "AutoAttack-style ensemble, Croce & Hein 2020: APGD-CE → APGD-T (targeted DLR) → Square, " +
      "each on the images still correct; the first success per image is kept (worst case). " +
      "FAB-T is left out. Untargeted",
  ),
  version: z.enum(["standard", "fast"]).default("standard").describe(
    `standard: APGD-CE ${VERSIONS.standard["apgd-ce"].steps} steps, APGD-T ` +
      `${VERSIONS.standard["apgd-t"].targets} targets × ${VERSIONS.standard["apgd-t"].steps} ` +
      `steps, Square ${VERSIONS.standard.square.queries} queries; fast: ` +
      `${VERSIONS.fast["apgd-ce"].steps} steps, ${VERSIONS.fast["apgd-t"].targets} targets × ` +
      `${VERSIONS.fast["apgd-t"].steps} steps, ${VERSIONS.fast.square.queries} queries ` +
      "(1 restart each; default standard)",
  ),
  members: MembersSchema.optional().describe(
    "run only these members (still in the standard order), e.g. one alone for its own robust " +
      "accuracy (default all)",
  ),
  norm: z.enum(["linf", "l2"]).default("linf").describe("threat model (default linf)"),
  eps,
  seed,
  batch_size: batchSize,
  preprocess,
}).strict();

export const AttackParamsSchema = z.discriminatedUnion("attack", [
  FgsmParamsSchema,
  PgdParamsSchema,
  MifgsmParamsSchema,
  ApgdParamsSchema,
  SquareParamsSchema,
  AutoAttackParamsSchema,
]).describe("which attack to run and its options");

/**
 * Parsed params, defaults filled in but `batch_size`, which `runAttack` resolves by backend
 * (`src/model/batch_defaults.ts`).
 */
export type AttackParams = z.infer<typeof AttackParamsSchema>;
/** Params as a client may send them (defaults optional). */
export type AttackParamsInput = z.input<typeof AttackParamsSchema>;

/**
 * Work a request may need, in image passes: gradient evaluations for gradient attacks (images ×
 * steps × restarts; FGSM one step, one run), forward passes for Square (images × queries ×
 * restarts), and their sum over the members for the ensemble ({@link autoAttackCostPerImage}).
 * A Square query (one forward pass) costs about a third of a gradient evaluation, so counting it
 * as one unit keeps the figure an upper bound. Early stopping only saves work; the figure is used
 * to refuse requests over budget before any tensor work.
 */
export function estimateCost(params: AttackParams, nImages: number): number {
  switch (params.attack) {
    case "fgsm":
      return nImages;
    case "mifgsm":
      return nImages * params.steps;
    case "pgd":
    case "apgd":
      return nImages * params.steps * params.restarts;
    case "square":
      return nImages * params.queries * params.restarts;
    case "autoattack":
      return nImages * autoAttackCostPerImage(params.version, params.members ?? MEMBERS);
  }
}

/** What {@link estimateCost} counts for these params, and what a client can cut to lower it. */
export function costUnits(params: AttackParams): { units: string; cut: string } {
  switch (params.attack) {
    case "fgsm":
      return { units: "gradient evaluations (one per image)", cut: "images" };
    case "mifgsm":
      return { units: "gradient evaluations (images × steps)", cut: "images or steps" };
    case "pgd":
    case "apgd":
      return {
        units: "gradient evaluations (images × steps × restarts)",
        cut: "images, steps or restarts",
      };
    case "square":
      return { units: "forward passes (images × queries × restarts)", cut: "images or queries" };
    case "autoattack":
      return {
        units: "image passes (its members' gradient evaluations and Square's queries, per image)",
        cut: 'images, or members (version "fast")',
      };
  }
}

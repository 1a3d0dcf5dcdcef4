/**
 * The progressive purification schedule: every knob of Progressive Unified Defense (Hua et al.,
 * "Towards Unified Robustness Against Both Backdoor and Adversarial Attacks", arXiv 2405.17929)
 * in one strict zod schema, which is also the OpenAPI schema of the `schedule` param.
 *
 * A schedule is a list of stages run in order after a fixed start (the infected model's logits on
 * the extra set, the suspected target class, the first clean set):
 *
 * - `reconstruct`: optimise a trigger for the suspected target class, Neural-Cleanse style (Wang
 *   et al., "Neural Cleanse", S&P 2019): a mask `m` and pattern `p` such that
 *   `(1 − m)·x + m·p` sends clean images of other classes to the target, with an L1 cost on `m`.
 *   Patch triggers are exactly what untargeted PGD misses (DESIGN.md); a reconstructed patch
 *   stamped onto clean images with their true labels is the lever that removes them.
 * - `train`: SGD with momentum and weight decay on a weighted sum of losses over the current clean
 *   set: clean CE, CE on PGD examples with the given labels (the PUD observation), CE on images
 *   stamped with the reconstructed trigger, unlearning on flagged images, and mean-teacher
 *   consistency; optionally followed by re-scoring the extra set and re-selecting the clean set.
 *
 * Two presets: {@link publishedSchedule} (the authors' code, scaled to a small extra set) and
 * {@link defaultSchedule} (designed past the failures DESIGN.md records; see its JSDoc).
 *
 * @module
 */
import { z } from "zod";
import { ValidationError } from "../errors.ts";

const name = z.string().min(1).max(40).regex(/^[A-Za-z0-9_.-]+$/).describe(
  "a short label for reports (letters, digits, '_', '.', '-')",
);

export const PgdTrainingSchema = z.object({
  eps: z.number().gt(0).max(0.5).default(6 / 255).describe(
    "L-inf budget of the training adversarial examples, in [0,1] pixel units (default 6/255)",
  ),
  step_size: z.number().gt(0).max(0.5).optional().describe(
    "PGD step size in pixel units (default eps/4)",
  ),
  steps: z.int().min(1).max(50).default(5).describe("PGD steps per example (default 5)"),
  target: z.enum(["untargeted", "suspect"]).default("untargeted").describe(
    "untargeted: ascend the loss of the given label (the PUD recipe); suspect: descend the loss " +
      "of the suspected target class, which imitates the backdoor more closely (default untargeted)",
  ),
}).strict().describe("PGD settings of the adversarial examples (random start, L-inf, sign steps)");

export const LossWeightsSchema = z.object({
  clean: z.number().min(0).max(10).default(1).describe(
    "weight of cross-entropy on clean-set images with their labels (default 1)",
  ),
  adversarial: z.number().min(0).max(10).default(0).describe(
    "weight of cross-entropy on PGD examples of clean-set images with their labels (default 0)",
  ),
  trigger: z.number().min(0).max(10).default(0).describe(
    "weight of cross-entropy on clean-set images stamped with the reconstructed trigger, with " +
      "their own labels; needs an earlier reconstruct stage (default 0)",
  ),
  unlearn: z.number().min(0).max(10).default(0).describe(
    "weight of the unlearning term on flagged images (see unlearn.mode) (default 0)",
  ),
  mean_teacher: z.number().min(0).max(100).default(0).describe(
    "w of w·MSE(softmax(student), softmax(EMA teacher)) on clean-set images (default 0)",
  ),
  distill: z.number().min(0).max(100).default(0).describe(
    "w of w·T²·KL(softmax(z_infected/T) ‖ softmax(z/T)) on clean-set images the infected model " +
      "classifies as labelled (Hinton et al., 2015): keeps the infected model's clean behaviour " +
      "where it is right, which is what adversarial training erodes; the infected logits travel " +
      "in the state, so no second model is needed (default 0)",
  ),
}).strict().describe("weights of the loss terms summed at every step");

export const DistillSchema = z.object({
  temperature: z.number().min(0.5).max(20).default(2).describe(
    "T of the distillation term (default 2)",
  ),
}).strict().describe("distillation from the infected model on the images it gets right");

export const UnlearnSchema = z.object({
  mode: z.enum(["complement", "relabel", "ascent"]).default("complement").describe(
    "complement: −log(1 − p_label), which pushes each flagged image away from its given (target) " +
      "label without naming a class, is bounded below by 0 and fades once the image has left " +
      "the label; relabel: cross-entropy towards the class the model ranked highest other than " +
      "the given label at the last rescore (only as good as that guess); ascent: " +
      "−min(CE(flagged, label), loss_cap), the published gradient ascent, whose cap keeps it " +
      "from diverging (default complement)",
  ),
  loss_cap: z.number().gt(0).max(100).default(5).describe(
    "ascent mode: the flagged cross-entropy stops counting beyond this value (default 5)",
  ),
  anchor_l1: z.number().min(0).max(1).default(0).describe(
    "μ of μ·‖θ − θ_ref‖₁, θ_ref the weights at the start of the stage (default 0)",
  ),
  batch_size: z.int().min(1).max(1024).default(32).describe(
    "flagged images per step (default 32)",
  ),
}).strict().describe("how flagged images are unlearned");

export const MeanTeacherSchema = z.object({
  ema_decay: z.number().min(0).max(0.9999).default(0.99).describe(
    "teacher ← decay·teacher + (1 − decay)·student after every step (default 0.99)",
  ),
}).strict().describe("mean teacher (Tarvainen & Valpola, NeurIPS 2017)");

/** How the clean set and the flags are re-selected from consistency scores. */
export const RescoreSchema = z.object({
  clean: z.discriminatedUnion("rule", [
    z.object({
      rule: z.literal("split").describe(
        "every image above the two-component split of the scores (Otsu's cut, i.e. 1-D 2-means) " +
          "that was never flagged",
      ),
    }).strict(),
    z.object({
      rule: z.literal("fraction").describe("the top fraction of never-flagged images by score"),
      fraction: z.number().gt(0).max(1).describe("share of the extra set to keep as clean"),
    }).strict(),
  ]).default({ rule: "split" }).describe("which images form the next clean set (default split)"),
  flag: z.discriminatedUnion("rule", [
    z.object({
      rule: z.literal("split").describe(
        "images below the two-component split whose prediction changed (score < 0.5)",
      ),
      max_fraction: z.number().gt(0).max(0.5).default(0.3).describe(
        "never flag more than this share of the extra set at once (default 0.3)",
      ),
    }).strict(),
    z.object({
      rule: z.literal("fraction").describe("the lowest fraction by score (the published 1%)"),
      fraction: z.number().min(0).max(0.5).describe("share of the extra set to flag"),
    }).strict(),
  ]).default({ rule: "split", max_fraction: 0.3 }).describe(
    "which images are flagged as poisoned; flags are never lifted (default split)",
  ),
  score: z.enum(["consistency", "suspect_drop"]).default("consistency").describe(
    "what ranks images. consistency: PUD's s = 0.5 + 0.5·cos(z_infected, z_current) − " +
      "0.5·[argmax differ] (low = suspicious); suspect_drop: how far the suspected class's logit " +
      "fell from the infected model's, z_infected[t] − z_current[t] (high = suspicious): after " +
      "a few steps of unlearning the trigger, the images that relied on the backdoor lose the " +
      "most. Without a suspect, suspect_drop falls back to consistency (default consistency)",
  ),
  min_separation: z.number().min(0).max(1).default(0.75).describe(
    "split rules act only when the ranked scores are bimodal: Otsu's between-class share of " +
      "the variance must reach this (2/π ≈ 0.64 for one Gaussian; → 1 for two separated " +
      "groups; 0.75 for a uniform spread). Below it nothing is flagged and every ranked image stays clean (default 0.75)",
  ),
  scope: z.enum(["suspect", "all"]).default("suspect").describe(
    "suspect: when a target class is suspected, only images labelled with it can be flagged and " +
      "the split is computed within it (an all-to-one attack relabels every poisoned image to " +
      "the target), while never-flagged images of other classes stay clean; all: the whole " +
      "extra set is ranked together (the published rule) (default suspect)",
  ),
}).strict().describe(
  "after the stage: score s = 0.5 + 0.5·cos(z_infected, z_current) − 0.5·[argmax differ] on the " +
    "whole extra set, then re-select",
);

export const TrainStageSchema = z.object({
  kind: z.literal("train"),
  name,
  epochs: z.number().gt(0).max(200).default(1).describe(
    "passes over the clean set as it is when the stage starts (default 1)",
  ),
  steps: z.int().min(1).max(100_000).optional().describe(
    "exact optimizer steps; overrides epochs when set",
  ),
  batch_size: z.int().min(1).max(1024).default(128).describe(
    "clean-set images per step (default 128)",
  ),
  lr: z.number().gt(0).max(1).default(0.01).describe(
    "learning rate, constant through the stage: a decayed rate leaves later unlearning stages " +
      "unable to move the model (DESIGN.md) (default 0.01)",
  ),
  momentum: z.number().min(0).max(0.999).default(0.9).describe("SGD momentum (default 0.9)"),
  weight_decay: z.number().min(0).max(0.1).default(5e-4).describe(
    "L2 weight decay added to the gradient, as PyTorch's SGD does (default 5e-4)",
  ),
  losses: LossWeightsSchema.default(LossWeightsSchema.parse({})),
  pgd: PgdTrainingSchema.default(PgdTrainingSchema.parse({})),
  unlearn: UnlearnSchema.default(UnlearnSchema.parse({})),
  mean_teacher: MeanTeacherSchema.default(MeanTeacherSchema.parse({})),
  distill: DistillSchema.default(DistillSchema.parse({})),
  probe_lrs: z.array(z.number().gt(0).max(1)).min(1).max(5).optional().describe(
    "probe only (revert with rescore): run the stage once per learning rate, each from the same " +
      "weights and the same selection, and keep the selection whose scores split most cleanly " +
      "(highest separation). How hard a few steps must push to expose the backdoor depends on " +
      "the model's scale, which a fixed rate cannot know (default: lr only)",
  ),
  revert: z.boolean().default(false).describe(
    "probe: after the stage (and its rescore), restore the weights it started from, so the " +
      "stage only informs the selection (default false)",
  ),
  rescore: RescoreSchema.nullable().default(null).describe(
    "re-score the extra set and re-select the clean set after this stage; null: keep them " +
      "(default null)",
  ),
}).strict().describe("a fine-tuning stage");

export const ReconstructStageSchema = z.object({
  kind: z.literal("reconstruct"),
  name,
  steps: z.int().min(1).max(5000).default(100).describe("Adam steps (default 100)"),
  batch_size: z.int().min(1).max(1024).default(128).describe(
    "clean-set images of other classes per step (default 128)",
  ),
  lr: z.number().gt(0).max(1).default(0.1).describe(
    "Adam learning rate on mask and pattern logits (default 0.1)",
  ),
  l1_weight: z.number().min(0).max(100).default(0.5).describe(
    "λ of CE(target) + λ·mean(mask): larger finds smaller triggers (default 0.5)",
  ),
}).strict().describe(
  "reconstruct a trigger (mask, pattern) for the suspected target class from clean-set images",
);

export const StageSchema = z.discriminatedUnion("kind", [TrainStageSchema, ReconstructStageSchema])
  .describe("one stage of the schedule");

export const EvidenceSchema = z.object({
  landing_per_class: z.int().min(0).max(500).default(20).describe(
    "clean-looking images per class (the infected model agrees with their label) attacked by " +
      "untargeted PGD to see where they land; 0 skips the signal (default 20)",
  ),
  landing_eps: z.number().gt(0).max(0.5).default(8 / 255).describe(
    "L-inf budget of those PGD examples (default 8/255)",
  ),
  landing_steps: z.int().min(1).max(100).default(10).describe(
    "PGD steps, step eps/4, random start (default 10)",
  ),
  patch_steps: z.int().min(0).max(2000).default(60).describe(
    "Adam steps of the mask-and-pattern trigger search towards each class (Neural Cleanse); 0 " +
      "skips the signal (default 60)",
  ),
  patch_budget: z.number().gt(0).max(0.5).default(0.012).describe(
    "most area of that trigger, as a share of the image (the mask is scaled down past it): the " +
      "signal is how often a trigger this small reaches each class; 0.012 is 9.4 of 28×28 " +
      "pixels, about a 3×3 patch (default 0.012)",
  ),
  patch_l1_weight: z.number().min(0).max(100).default(1).describe(
    "λ of CE(target) + λ·mean(mask) in that search, which keeps the mask compact within the " +
      "budget (default 1)",
  ),
  additive_steps: z.int().min(0).max(2000).default(40).describe(
    "signed steps of the universal additive perturbation towards each class; 0 skips the " +
      "signal (default 40)",
  ),
  additive_eps: z.number().gt(0).max(0.5).default(16 / 255).describe(
    "L-inf budget of that perturbation: above the adversarial-training budget, within a " +
      "blended or signal trigger's amplitude (default 16/255)",
  ),
  untargeted: z.boolean().default(true).describe(
    "also search one untargeted trigger (every class moved off its label), the all-to-all test " +
      "(default true)",
  ),
  batch_size: z.int().min(1).max(1024).default(32).describe(
    "images per step of every search; the phase costs about K·(patch_steps + additive_steps) " +
      "of these batches (default 32)",
  ),
  patch_threshold: z.number().gt(0).max(100).default(3).describe(
    "anomaly index (robust SDs above the median success of the budgeted patch trigger) that " +
      "makes a suspect; Neural Cleanse's index on mask size uses 2 (default 3)",
  ),
  additive_threshold: z.number().gt(0).max(100).default(5).describe(
    "anomaly index (robust SDs above the median success) that makes an additive suspect; set " +
      "above the natural attractor classes of a clean model (default 5)",
  ),
  landing_threshold: z.number().gt(0).max(100).default(5).describe(
    "anomaly index of the landing share that makes a suspect (default 5)",
  ),
  max_suspects: z.int().min(1).max(100).default(3).describe(
    "most suspects kept, most anomalous first (default 3)",
  ),
}).strict().describe(
  "evidence from the infected model itself: where untargeted adversarial examples land, the " +
    "smallest patch trigger and the strongest small additive perturbation towards each class",
);

export const SuspectSchema = z.object({
  rule: z.enum(["evidence", "label_excess", "none"]).default("evidence").describe(
    "evidence: classes whose model-side evidence stands out (see evidence), with label excess " +
      "as one more signal — finds clean-label and all-to-all backdoors; label_excess: the class " +
      "whose label count most exceeds the median class count (an all-to-one attack adds its " +
      "poisoned images to the target's count); none: no suspect (default evidence)",
  ),
  min_excess: z.number().min(0).max(10).default(0.2).describe(
    "label excess that makes a suspect: its count exceeds the median count by this share " +
      "(default 0.2)",
  ),
  evidence: EvidenceSchema.default(EvidenceSchema.parse({})),
}).strict().describe("how the suspected target classes are chosen before any training");

export const InitialCleanSchema = z.discriminatedUnion("rule", [
  z.object({
    rule: z.literal("random").describe("a random fraction of the extra set (the published rule)"),
    fraction: z.number().gt(0).max(1).describe("share of the extra set"),
  }).strict(),
  z.object({
    rule: z.literal("outside_suspect").describe(
      "images whose label is not the suspected target and on which the infected model agrees " +
        "with the label; poisoned images of an all-to-one attack carry the target label, so none " +
        "gets in",
    ),
  }).strict(),
]).describe("the first clean set");

export const ScheduleSchema = z.object({
  name: name.default("custom"),
  train_mode: z.enum(["inference", "train"]).default("inference").describe(
    "inference: run layers in inference mode while fine-tuning (dropout off, batch-norm " +
      "statistics frozen), which keeps rounds deterministic; train: training mode (dropout draws " +
      "are then not reproducible) (default inference)",
  ),
  score_batch_size: z.int().min(1).max(4096).default(256).describe(
    "images per forward pass when scoring the extra set (default 256)",
  ),
  suspect: SuspectSchema.default(SuspectSchema.parse({})),
  initial_clean: InitialCleanSchema.default({ rule: "outside_suspect" }),
  stages: z.array(StageSchema).min(1).max(16).describe("the stages, run in order"),
}).strict().describe("a progressive purification schedule");

export type Schedule = z.output<typeof ScheduleSchema>;
export type TrainStage = z.output<typeof TrainStageSchema>;
export type ReconstructStage = z.output<typeof ReconstructStageSchema>;
export type Rescore = z.output<typeof RescoreSchema>;

/** Steps a train stage takes over a clean set of `clean` images. */
export function trainStageSteps(stage: TrainStage, clean: number): number {
  if (stage.steps !== undefined) return stage.steps;
  return Math.max(1, Math.ceil((stage.epochs * clean) / stage.batch_size));
}

/** A probe that tries several learning rates and keeps the cleanest split. */
export function isMultiProbe(stage: TrainStage): boolean {
  return stage.revert && stage.rescore !== null && (stage.probe_lrs?.length ?? 0) > 1;
}

/**
 * Validates a schedule and fills in defaults.
 *
 * @throws {ValidationError} naming each offending field and what it allows.
 */
export function parseSchedule(json: unknown): Schedule {
  const r = ScheduleSchema.safeParse(json);
  if (!r.success) {
    throw ValidationError.fromZod(r.error, { label: "invalid schedule", root: "schedule" });
  }
  return r.data;
}

/**
 * The designed default. What it does, and which failure each part answers (DESIGN.md, "What a
 * straight port of the published schedule does", and issue 11's clean-label measurement):
 *
 * 0. Suspects come from the infected model, not from the labels (`suspect.rule: evidence`): per
 *    class, how often a small budgeted patch and a small universal additive perturbation reach
 *    it, and where untargeted PGD examples land, with label excess as one more signal that only
 *    counts when the model names no other class. A clean-label attack (SIG, label-consistent
 *    patch) leaves no label excess, a naturally unbalanced set leaves a false one, an all-to-all
 *    attack makes every class a target: all three fooled the label rule.
 * 1. The first clean set leaves out the suspected classes (none for all-to-all) and every image
 *    the infected model disagrees with: a random first set carries poison, and training on it
 *    re-teaches the backdoor.
 * 2. `reconstruct` refines the primary suspect's patch trigger, starting from the evidence
 *    search; the train stages stamp it and every other working trigger the evidence found
 *    (additive perturbations, the all-to-all trigger) onto clean images with their own labels,
 *    so removal does not rest on identifying the poisoned images. Untargeted PGD alone barely
 *    touches patch triggers; the stamped images do.
 * 3. A `probe` at three rates then flags images of the suspected classes whose own label's logit
 *    fell most, by a split of the score distribution within each class (not a fixed rate), and
 *    flags are never lifted; the rest of the suspected classes returns to the clean set, so a
 *    clean-label target keeps the images it needs for its accuracy.
 * 4. `purge` unlearns the flagged images (a bounded complementary-label loss) while training on
 *    clean, PGD and stamped images; `robust` continues with adversarial training a little above
 *    the evaluation budget (PGD-5 at 10/255 against PGD-20 at 8/255), a mean teacher and
 *    distillation from the infected model on the clean images it classifies right (its clean
 *    behaviour is what adversarial training erodes), for ten epochs; `settle` ends at 8/255 and
 *    a fifth of the rate.
 *    Measured on Fashion-MNIST (README, bench/purify_flow.ts): 3 + 10 + 3 epochs of a
 *    1,800-image clean set is about 230 optimizer steps.
 */
export function defaultSchedule(): Schedule {
  const probePgd = { eps: 6 / 255, steps: 5 };
  const pgd = { eps: 8 / 255, steps: 5 };
  const robust = {
    kind: "train",
    losses: { clean: 1, adversarial: 1, trigger: 0.5, unlearn: 0.5, mean_teacher: 1, distill: 1 },
    pgd,
    unlearn: { mode: "complement", batch_size: 32 },
    mean_teacher: { ema_decay: 0.99 },
  };
  return parseSchedule({
    name: "default",
    initial_clean: { rule: "outside_suspect" },
    stages: [
      { kind: "reconstruct", name: "reconstruct", steps: 300, batch_size: 128, l1_weight: 3 },
      {
        kind: "train",
        name: "probe",
        steps: 3,
        probe_lrs: [0.003, 0.01, 0.03],
        losses: { clean: 1, adversarial: 1, trigger: 1 },
        pgd: probePgd,
        revert: true,
        rescore: {
          score: "suspect_drop",
          scope: "suspect",
          clean: { rule: "split" },
          flag: { rule: "split", max_fraction: 0.3 },
        },
      },
      {
        kind: "train",
        name: "purge",
        epochs: 3,
        lr: 0.005,
        losses: { clean: 1, adversarial: 1, trigger: 1, unlearn: 0.5 },
        pgd,
        unlearn: { mode: "complement", batch_size: 32 },
      },
      { ...robust, name: "robust", epochs: 10, lr: 0.005, pgd: { eps: 10 / 255, steps: 5 } },
      { ...robust, name: "settle", epochs: 3, lr: 0.001 },
    ],
  });
}

/**
 * The authors' public recipe (DESIGN.md's table), for comparison: a random first clean set of
 * 20%, five stages whose first half of epochs is adversarial and second half clean, fixed growth
 * to the top [0.4, 0.7, 0.8, 0.9] by consistency with the lowest 1% flagged, PGD eps 6/255 then
 * 4/255, a learning rate decayed from 0.01 to 1e-4, then unlearning by gradient ascent
 * (λ = 0.003, μ = 1e-4) and a mean teacher (w = 0.05). Epochs are the paper's, counted over the
 * clean set of a small (about 2,000-image) extra set, so a full run is some hundreds of steps.
 */
export function publishedSchedule(): Schedule {
  const pgd = (eps: number, div: number) => ({ eps, step_size: eps / div, steps: 7 });
  const fractions = [0.4, 0.7, 0.8, 0.9];
  const stages: unknown[] = [];
  const lrs = [0.01, 0.01, 0.001, 0.001];
  for (let s = 0; s < 4; s++) {
    const p = s < 3 ? pgd(6 / 255, 5) : pgd(6 / 255, 6);
    stages.push({
      kind: "train",
      name: `stage${s}-adv`,
      epochs: 5,
      lr: lrs[s],
      losses: { clean: 0, adversarial: 1 },
      pgd: p,
    });
    stages.push({
      kind: "train",
      name: `stage${s}-clean`,
      epochs: 5,
      lr: lrs[s],
      losses: { clean: 1 },
      rescore: {
        clean: { rule: "fraction", fraction: fractions[s] },
        flag: { rule: "fraction", fraction: 0.01 },
        scope: "all",
      },
    });
  }
  stages.push({
    kind: "train",
    name: "stage4-adv",
    epochs: 10,
    lr: 1e-4,
    losses: { clean: 0, adversarial: 1 },
    pgd: pgd(4 / 255, 6),
  });
  stages.push({
    kind: "train",
    name: "stage4-unlearn",
    epochs: 10,
    lr: 1e-4,
    losses: { clean: 1, unlearn: 0.003 },
    unlearn: { mode: "ascent", loss_cap: 100, anchor_l1: 1e-4, batch_size: 32 },
  });
  stages.push({
    kind: "train",
    name: "stage4-teacher",
    epochs: 10,
    lr: 1e-4,
    losses: { clean: 1, mean_teacher: 0.05 },
    mean_teacher: { ema_decay: 0.99 },
  });
  return parseSchedule({
    name: "published",
    suspect: { rule: "none" },
    initial_clean: { rule: "random", fraction: 0.2 },
    stages,
  });
}

/** The presets by name. */
export const PRESETS = { default: defaultSchedule, published: publishedSchedule } as const;

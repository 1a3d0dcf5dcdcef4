/**
 * The detect request's `params`: one zod schema, a union discriminated by `method`, which is also
 * the OpenAPI schema (`z.toJSONSchema`). Unknown keys are rejected, so a misspelt option is a 400
 * rather than a silently ignored default. Rules that need the images or the model (class sizes,
 * layer names, cost) live in `run.ts` and the detectors.
 */
import { z } from "zod";
import { BATCH_MAXIMA, batchDefaultText } from "../model/batch_defaults.ts";
import { PreprocessSchema } from "../model/preprocess_schema.ts";

const layer = z.string().min(1).max(256).optional().describe(
  "name of the layer whose activations are analysed (default: the input of the last Dense " +
    "layer, i.e. the penultimate representation); an unknown name is a 422 listing the layers",
);
const seed = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0).describe(
  "seeds every random choice (k-means++, blend partners, eigensolver starts); same seed, same " +
    "result (default 0)",
);
const batchSize = z.number().int().min(1).max(BATCH_MAXIMA.detect).optional().describe(
  `images per forward pass (${batchDefaultText("detect")}; the report's batch_size gives the ` +
    "one used)",
);
/** pud's batch is the SGD mini-batch of its probe: a method hyperparameter, not by backend. */
const pudBatchSize = z.number().int().min(1).max(BATCH_MAXIMA.pud_detect).optional().describe(
  "images per SGD mini-batch of the trigger reconstruction and the probe fine-tune, and per " +
    `forward pass (${batchDefaultText("pud_detect")}: it changes the result, so it does not ` +
    "follow the backend)",
);
const epsilon = z.number().gt(0).lte(0.5).default(0.1).describe(
  "expected fraction of poisoned images ε; the top_fraction rule flags 1.5·ε of each class " +
    "(Tran et al. 2018) (default 0.1)",
);
const flagRule = z.enum(["auto", "top_fraction", "mad", "fpr"]).default("auto").describe(
  "how scores become flags, within each label class. auto: the method's own rule " +
    "(activation-clustering: the suspect cluster of classes judged poisoned; spectral, strip " +
    "and spectre: fpr, so clean data flags under fpr). top_fraction: the top flag_fraction of " +
    "each class (spectral's paper rule, 1.5·epsilon; it flags clean classes too). " +
    "mad: robust z-score (score − median)/MAD above mad_cut. fpr: a cut from the clean bulk of " +
    "the score distribution so that clean classes flag under fpr (default auto)",
);
const fpr = z.number().gt(0).lt(1).default(0.05).describe(
  "for the fpr rule: the largest share of a clean class that may be flagged (default 0.05)",
);
const madCut = z.number().gt(0).max(100).default(3.5).describe(
  "for the mad rule: robust z-score above which a score is flagged (default 3.5, Iglewicz & " +
    "Hoaglin)",
);
const flagFraction = z.number().gt(0).lte(1).optional().describe(
  "for the top_fraction rule: share of each class flagged (default 1.5·epsilon)",
);
const preprocess = PreprocessSchema.optional();

/** Flag options every non-PUD method takes. */
const flagging = {
  flag_rule: flagRule,
  fpr,
  mad_cut: madCut,
  flag_fraction: flagFraction,
  epsilon,
};

const common = { seed, batch_size: batchSize, preprocess };

export const SpectralParamsSchema = z.object({
  method: z.literal("spectral").describe(
    "spectral signatures (Tran, Li & Madry, NeurIPS 2018): squared projection on each class's " +
      "top singular vector of the activations",
  ),
  layer,
  ...flagging,
  ...common,
}).strict();

export const ActivationClusteringParamsSchema = z.object({
  method: z.literal("activation-clustering").describe(
    "activation clustering (Chen et al. 2018): per class, PCA of the activations then 2-means; " +
      "classes whose silhouette stands out are poisoned, and within them the clusters the " +
      "model labels most confidently",
  ),
  layer,
  components: z.number().int().min(1).max(64).default(10).describe(
    "principal components kept before clustering (default 10, as the paper's ICA)",
  ),
  clusters: z.number().int().min(2).max(8).default(3).describe(
    "clusters per class when picking the suspect images: those whose median label margin " +
      "(label logit − best other logit) is above the midpoint of the clusters' (default 3)",
  ),
  size_threshold: z.number().gt(0).lte(0.5).default(0.35).describe(
    "with fewer than 3 classes to compare: a 2-means cluster under this share of its class " +
      "marks the class poisoned (default 0.35, the paper's)",
  ),
  min_silhouette: z.number().min(0).max(1).default(0.15).describe(
    "least silhouette of the 2-means split for a class to be judged poisoned (default 0.15)",
  ),
  ...flagging,
  ...common,
}).strict();

export const StripParamsSchema = z.object({
  method: z.literal("strip").describe(
    "STRIP (Gao et al., ACSAC 2019): entropy of the model's predictions on blends of each " +
      "image with others from the set; low entropy = poisoned",
  ),
  blends: z.number().int().min(1).max(128).default(16).describe(
    "blends per image (default 16)",
  ),
  alpha: z.number().gt(0).lt(1).default(0.5).describe(
    "weight of the image under test in each blend alpha·x + (1 − alpha)·partner (default 0.5)",
  ),
  ...flagging,
  ...common,
}).strict();

export const SpectreParamsSchema = z.object({
  method: z.literal("spectre").describe(
    "SPECTRE (Hayase et al., ICML 2021), simplified: robust covariance per class, whitening, " +
      "QUE scores",
  ),
  layer,
  components: z.number().int().min(1).max(256).default(4).describe(
    "principal components kept per class (default 4; at most a quarter of the class size)",
  ),
  trim: z.number().gt(0).lte(0.5).default(0.5).describe(
    "share of each class the robust covariance may leave out (default 0.5, the most robust: " +
      "in all-to-one attacks the target class is about half poison)",
  ),
  alpha: z.number().min(0).max(64).default(4).describe(
    "QUE temperature: 0 is the Mahalanobis norm, large values approach the top direction only " +
      "(default 4)",
  ),
  ...flagging,
  ...common,
}).strict();

export const PudParamsSchema = z.object({
  method: z.literal("pud").describe(
    "Progressive Unified Defense's detector (Hua et al., arXiv 2405.17929): consistency of " +
      "the model's logits before and after adversarial fine-tuning",
  ),
  pgd_eps: z.number().gt(0).lte(1).default(6 / 255).describe(
    "L-inf budget of the untargeted PGD examples, in [0,1] pixel units (default 6/255)",
  ),
  pgd_steps: z.number().int().min(1).max(100).default(7).describe(
    "PGD steps per adversarial example (default 7)",
  ),
  finetune_epochs: z.number().int().min(1).max(50).default(2).describe(
    "adversarial fine-tuning passes over the set (default 2)",
  ),
  max_steps: z.number().int().min(1).max(100_000).default(200).describe(
    "most optimizer steps of the fine-tuning, whatever the epochs (default 200)",
  ),
  flag_fraction: z.number().gt(0).lte(1).optional().describe(
    "share of the set flagged, lowest consistency first (default: a cut derived from the " +
      "score distribution)",
  ),
  ...common,
  batch_size: pudBatchSize,
}).strict();

export const DetectParamsSchema = z.discriminatedUnion("method", [
  PudParamsSchema,
  SpectralParamsSchema,
  ActivationClusteringParamsSchema,
  StripParamsSchema,
  SpectreParamsSchema,
]).describe("which poisoned-image detector to run and its options");

/**
 * Parsed params, defaults filled in but `batch_size`, which `runDetect` resolves by backend
 * (`src/model/batch_defaults.ts`).
 */
export type DetectParams = z.infer<typeof DetectParamsSchema>;
/** The method names. */
export type DetectMethod = DetectParams["method"];
/** The PUD detector's parsed params (`src/detect/pud.ts`), defaults filled in. */
export type PudParams = z.infer<typeof PudParamsSchema>;

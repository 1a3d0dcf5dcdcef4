/**
 * A whole detect request: checks that images, labels, ground truth and params fit together and
 * that the cost is within budget (all before any tensor work), runs the chosen detector, and
 * reports flags per class and, when the ground truth is known, precision, recall, F1 and AUROC.
 */
import { CostExceededError, ensure, ShapeMismatchError, UnprocessableError } from "../errors.ts";
import { checkBatchFits, type ImageBatch } from "../io/images.ts";
import { checkLabels } from "../io/label_checks.ts";
import { CPU_BATCH_DEFAULTS, resolveBatchSize } from "../model/batch_defaults.ts";
import type { Classifier } from "../model/classifier.ts";
import { activeBackend, type BackendName } from "../tensor/backend.ts";
import { activationClustering } from "./activation_clustering.ts";
import type { DetectMethod, DetectParams } from "./options.ts";
import {
  type DetectionMetrics,
  detectionMetrics,
  rocCurve,
  type RocPoint,
} from "../metrics/detection.ts";
import { estimatePudCost, pud } from "./pud.ts";
import { spectral } from "./spectral.ts";
import { spectre } from "./spectre.ts";
import { strip } from "./strip.ts";
import type { FlagRule } from "./thresholds.ts";
import type { DetectContext, DetectResult } from "./types.ts";

export interface RunDetectOptions {
  /** Checked between batches; its reason is rethrown. */
  signal?: AbortSignal;
  /** Most image passes ({@link estimateDetectCost}) the request may need. */
  maxCost: number;
  /** Ground truth, 1 = poisoned, one per image: adds precision, recall, F1 and AUROC. */
  isPoison?: Uint8Array;
  /**
   * `pud` only: a purified copy of the model (e.g. from `/v1/purify/rounds`); its logits replace
   * the internal adversarial fine-tune. Other methods refuse it.
   */
  purified?: Classifier;
  /** ROC curve points in the report when `isPoison` is given (default 21; 0 for none). */
  rocPoints?: number;
  /**
   * The backend the engine runs on, which picks the default `batch_size` (see
   * `src/model/batch_defaults.ts`); default the one tfjs runs on now.
   */
  backend?: BackendName;
}

export interface DetectReport {
  method: DetectMethod;
  n: number;
  /** Images flagged. */
  flagged: number;
  flagged_fraction: number;
  suspected_target: number | null;
  threshold: DetectResult["threshold"];
  /** Flag counts for each label class present. */
  per_class: { class: number; n: number; flagged: number }[];
  /** Present when the ground truth was given. */
  metrics?: DetectionMetrics & { roc: RocPoint[] };
  /** Upper bound of image passes the method needed ({@link estimateDetectCost}). */
  cost: number;
  /** Images per pass (pud: per SGD mini-batch), as sent or as resolved for the backend. */
  batch_size: number;
  time_ms: number;
  diagnostics?: Record<string, unknown>;
}

export interface RunDetectResult {
  result: DetectResult;
  report: DetectReport;
}

/** Fewest images of one label a feature-space method needs (PCA to 10 dims, then 2 clusters). */
export const MIN_IMAGES_PER_CLASS = 10;

/**
 * Image passes (forward, or forward and backward) a request may need, the unit of
 * `MAX_ATTACK_COST`:
 * - spectral, activation-clustering, spectre: one forward pass per image (the linear algebra on
 *   the host is small next to it);
 * - strip: one per blend, images × blends;
 * - pud: the estimate of its algorithm in `pud.ts` ({@link estimatePudCost}): the infected
 *   model's logits, trigger reconstruction, the probe fine-tunes (pgd_steps gradient passes and
 *   one training pass per image) and the re-scoring passes, at `batchSize` (default the
 *   request's `batch_size`, else pud's {@link CPU_BATCH_DEFAULTS}, the same on every backend).
 */
export function estimateDetectCost(
  params: DetectParams,
  nImages: number,
  batchSize = params.batch_size ?? CPU_BATCH_DEFAULTS.pud_detect,
): number {
  switch (params.method) {
    case "spectral":
    case "activation-clustering":
    case "spectre":
      return nImages;
    case "strip":
      return nImages * params.blends;
    case "pud":
      return estimatePudCost(params, nImages, batchSize);
  }
}

/** Fewest images a method can work with. */
export function minImages(params: DetectParams): number {
  return params.method === "strip" ? 2 : MIN_IMAGES_PER_CLASS;
}

/**
 * Runs `params.method` on `images` (NHWC in [0,1]) with their (possibly poisoned) `labels`.
 * `params.preprocess` must be the normalisation `clf` applies (feature-space methods read a layer
 * of `clf.model` directly and apply it again themselves). An absent `batch_size` is resolved
 * from `opts.backend` and the model's activation budget (128 on wasm/cpu; up to 1024 on webgpu
 * for the forward-only methods; pud's is an SGD mini-batch, 128 on every backend); the report's
 * `batch_size` is the one used.
 *
 * @throws {ShapeMismatchError} image shape ≠ the model's input, label or ground-truth count ≠
 *   image count.
 * @throws {UnprocessableError} fewer images than the method needs (for feature-space methods, no
 *   label with at least 10 images), a label that is not a class of the model, a ground truth
 *   other than 0/1, a pixel outside [0,1], an unknown layer name.
 * @throws {CostExceededError} `estimateDetectCost(params, N)` > `maxCost`.
 * @throws the signal's reason when aborted.
 */
export async function runDetect(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  params: DetectParams,
  opts: RunDetectOptions,
): Promise<RunDetectResult> {
  const t0 = performance.now();
  const pud = params.method === "pud";
  const batchSize = resolveBatchSize(
    pud ? "pud_detect" : "detect",
    params.batch_size,
    opts.backend ?? activeBackend(),
    clf,
    pud,
  );
  const cost = validate(clf, images, labels, params, opts, batchSize);
  const ctx: DetectContext = { signal: opts.signal, batchSize };
  const result = await dispatch(clf, images, labels, params, ctx, opts.purified);
  const n = images.shape[0];

  const counts = new Map<number, { n: number; flagged: number }>();
  let flagged = 0;
  for (let i = 0; i < n; i++) {
    const k = counts.get(labels[i]) ?? { n: 0, flagged: 0 };
    k.n++;
    k.flagged += result.flags[i];
    flagged += result.flags[i];
    counts.set(labels[i], k);
  }
  const report: DetectReport = {
    method: params.method,
    n,
    flagged,
    flagged_fraction: flagged / n,
    suspected_target: result.suspectedTarget ?? null,
    threshold: result.threshold,
    per_class: [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([c, k]) => ({
      class: c,
      ...k,
    })),
    cost,
    batch_size: batchSize,
    time_ms: 0,
    diagnostics: result.diagnostics,
  };
  if (opts.isPoison !== undefined) {
    report.metrics = {
      ...detectionMetrics(result.scores, result.flags, opts.isPoison),
      roc: rocCurve(result.scores, opts.isPoison, opts.rocPoints ?? 21),
    };
    if ((opts.rocPoints ?? 21) === 0) report.metrics.roc = [];
  }
  report.time_ms = Math.round(performance.now() - t0);
  return { result, report };
}

/** The cross-field rules; returns the cost estimate. */
function validate(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  params: DetectParams,
  opts: RunDetectOptions,
  batchSize: number,
): number {
  const n = images.shape[0];
  checkBatchFits(images, clf.inputShape);
  const need = minImages(params);
  ensure(
    n >= need,
    () =>
      new UnprocessableError(
        `${params.method} needs at least ${need} images; got ${n}`,
        { n, min: need },
      ),
  );
  const cost = estimateDetectCost(params, n, batchSize);
  ensure(
    cost <= opts.maxCost,
    () =>
      new CostExceededError(
        `${params.method} needs up to ${cost} image passes; the limit is ${opts.maxCost}: send ` +
          "fewer images" + (params.method === "strip" ? " or blends" : ""),
        { cost, maxCost: opts.maxCost },
      ),
  );
  const k = clf.numClasses;
  checkLabels(images, labels, k);
  if (opts.purified !== undefined) {
    ensure(
      params.method === "pud",
      () =>
        new UnprocessableError(
          `a purified model is used only by method 'pud', not '${params.method}'; leave it out`,
        ),
    );
    const [a, b] = [clf.inputShape.join("×"), opts.purified.inputShape.join("×")];
    ensure(
      a === b && clf.numClasses === opts.purified.numClasses,
      () =>
        new ShapeMismatchError(
          `the purified model takes ${b} images and has ${opts.purified!.numClasses} classes; ` +
            `the suspect model takes ${a} with ${k} classes: they must match`,
        ),
    );
  }
  if (params.method !== "strip" && params.method !== "pud") {
    const sizes = new Map<number, number>();
    for (const l of labels) sizes.set(l, (sizes.get(l) ?? 0) + 1);
    const largest = Math.max(...sizes.values());
    ensure(
      largest >= MIN_IMAGES_PER_CLASS,
      () =>
        new UnprocessableError(
          `${params.method} analyses each label class separately and needs at least ` +
            `${MIN_IMAGES_PER_CLASS} images of one label; the largest class has ${largest}`,
          { largestClass: largest, min: MIN_IMAGES_PER_CLASS },
        ),
    );
  }
  const truth = opts.isPoison;
  if (truth !== undefined) {
    ensure(
      truth.length === n,
      () =>
        new ShapeMismatchError(
          `${truth.length} ground-truth entries for ${n} images; give one 0/1 per image`,
        ),
    );
    const bad = truth.findIndex((v) => v !== 0 && v !== 1);
    ensure(
      bad < 0,
      () =>
        new UnprocessableError(
          `ground truth of image ${bad} is ${truth[bad]}; allowed: 0 (clean) or 1 (poisoned)`,
          { index: bad },
        ),
    );
  }
  return cost;
}

/** The flag rule a request asks for; undefined for "auto" (each detector's own default). */
export function flagRuleOf(
  p: { flag_rule: string; fpr: number; mad_cut: number; flag_fraction?: number; epsilon: number },
): FlagRule | undefined {
  switch (p.flag_rule) {
    case "top_fraction":
      return { rule: "top_fraction", fraction: p.flag_fraction ?? Math.min(1, 1.5 * p.epsilon) };
    case "mad":
      return { rule: "mad", cut: p.mad_cut };
    case "fpr":
      return { rule: "fpr", fpr: p.fpr };
    default:
      return undefined;
  }
}

async function dispatch(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  p: DetectParams,
  ctx: DetectContext,
  purified?: Classifier,
): Promise<DetectResult> {
  switch (p.method) {
    case "spectral":
      return await spectral(clf, images, labels, {
        layer: p.layer,
        preprocess: p.preprocess,
        epsilon: p.epsilon,
        flagRule: flagRuleOf(p),
        seed: p.seed,
      }, ctx);
    case "activation-clustering":
      return await activationClustering(clf, images, labels, {
        layer: p.layer,
        preprocess: p.preprocess,
        components: p.components,
        clusters: p.clusters,
        sizeThreshold: p.size_threshold,
        minSilhouette: p.min_silhouette,
        flagRule: flagRuleOf(p),
        seed: p.seed,
      }, ctx);
    case "strip":
      return await strip(clf, images, labels, {
        blends: p.blends,
        alpha: p.alpha,
        flagRule: flagRuleOf(p),
        seed: p.seed,
      }, ctx);
    case "spectre":
      return await spectre(clf, images, labels, {
        layer: p.layer,
        preprocess: p.preprocess,
        components: p.components,
        alpha: p.alpha,
        trim: p.trim,
        flagRule: flagRuleOf(p),
        seed: p.seed,
      }, ctx);
    case "pud":
      return await pud(clf, images, labels, { ...p, purified }, ctx);
  }
}

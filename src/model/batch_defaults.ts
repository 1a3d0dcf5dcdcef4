/**
 * Backend-dependent default batch sizes for requests that do not set `batch_size` (attacks,
 * evaluation, detection / scoring chunks). wasm and cpu keep the values the schemas have always
 * had, unchanged and unclamped (a default that does not fit the activation budget is still
 * refused with 413, as before). On webgpu a GPU needs far more images per dispatch to fill its
 * cores, so the default is larger, clamped to the largest batch whose activations fit the model's
 * budget (`MAX_ACTIVATION_BYTES`, see src/io/activation_budget.ts) and to the schema's maximum.
 *
 * Not covered, deliberately: the purification schedule's SGD mini-batch sizes. They are method
 * hyperparameters (Hua et al., arXiv 2405.17929, §4) that change the purified weights, not a
 * throughput knob, so they stay what the schedule says on every backend.
 *
 * Note: an attack's random starts are drawn per batch, so the same seed under a different
 * batch size gives different (equally valid) adversarial examples; a caller who needs the wasm
 * output on webgpu sets `batch_size` explicitly.
 */
import { type ActivationBudget, maxBatchFor } from "../io/activation_budget.ts";
import type { BackendName } from "../tensor/backend.ts";

/** What the batch is for: each has its own schema default and maximum. */
export type BatchKind = "attack" | "evaluate" | "detect";

/** Today's schema defaults, kept bit for bit on wasm and cpu. */
export const CPU_BATCH_DEFAULTS: Readonly<Record<BatchKind, number>> = Object.freeze({
  attack: 128,
  evaluate: 256,
  detect: 128,
});

/**
 * The webgpu defaults before the budget clamp. 1024 images of the 28×28 small CNN is ~1 GiB of
 * activations with gradients at the default budget's edge; reasoning about a real GPU (thousands
 * of cores, a conv layer needs batch × H × W ≥ 10⁵ output rows to fill them), not measured on one.
 */
export const WEBGPU_BATCH_DEFAULTS: Readonly<Record<BatchKind, number>> = Object.freeze({
  attack: 1024,
  evaluate: 1024,
  detect: 1024,
});

/** The schemas' maxima (src/attacks/options.ts, src/metrics/evaluate_options.ts, detect). */
export const BATCH_MAXIMA: Readonly<Record<BatchKind, number>> = Object.freeze({
  attack: 1024,
  evaluate: 4096,
  detect: 1024,
});

/**
 * The batch size a request gets when it does not set one.
 *
 * @param kind what the batch is for.
 * @param backend the backend the engine runs on.
 * @param budget the model's activation budget (with `backward` as the route runs it); when
 *   absent the webgpu value is not clamped.
 * @returns on wasm/cpu {@link CPU_BATCH_DEFAULTS}; on webgpu {@link WEBGPU_BATCH_DEFAULTS} clamped
 *   to the budget's largest batch and the schema maximum, at least 1.
 */
export function defaultBatchSize(
  kind: BatchKind,
  backend: BackendName,
  budget?: ActivationBudget,
): number {
  if (backend !== "webgpu") return CPU_BATCH_DEFAULTS[kind];
  const fits = budget ? maxBatchFor(budget) : Infinity;
  return Math.max(1, Math.min(WEBGPU_BATCH_DEFAULTS[kind], BATCH_MAXIMA[kind], fits));
}

/** The docs/OpenAPI wording of a default, e.g. "default: 128 on wasm/cpu, 1024 on webgpu". */
export function batchDefaultText(kind: BatchKind): string {
  return `default: ${CPU_BATCH_DEFAULTS[kind]} on wasm/cpu, ${
    WEBGPU_BATCH_DEFAULTS[kind]
  } on webgpu (lowered to the largest batch the model's activation budget allows)`;
}

/**
 * Backend-dependent batch sizes for requests that do not set `batch_size` (attacks, evaluation,
 * detection). The schemas leave the field optional with no parse-time default; the run functions
 * (`runAttack`, `runEvaluate`, `runDetect`) resolve it here from the engine's backend and the
 * model's activation budget.
 *
 * - wasm and cpu keep the values the schemas have always had, unchanged and unclamped (a default
 *   that does not fit the activation budget is still refused with 413, as before), so every wasm
 *   result is what it was.
 * - webgpu: a GPU needs far more images per dispatch to fill its cores, so the default is
 *   larger, clamped to the largest batch whose activations fit the model's budget
 *   (`MAX_ACTIVATION_BYTES`, see src/io/activation_budget.ts) and to the schema's maximum.
 *
 * Not covered, deliberately: SGD mini-batch sizes. They are method hyperparameters (Hua et al.,
 * arXiv 2405.17929, §4) that change the trained weights, not a throughput knob, so they stay what
 * the method says on every backend. That is the purification schedule's stages, and the `pud`
 * detector, whose `batch_size` is the mini-batch of its trigger reconstruction and probe
 * fine-tune (kind `"pud_detect"`: 128 everywhere).
 *
 * Note: an attack's random starts are drawn per batch (`deriveSeed(seed, b)`), so the same seed
 * under a different batch size gives different (equally valid) adversarial examples; a caller
 * who needs the wasm output on webgpu sets `batch_size` explicitly.
 *
 * Pure: no tfjs, callable from the HTTP thread (the schema descriptions) and the engine.
 *
 * @module
 */
import type { BackendName } from "../tensor/backend.ts";
import type { Classifier } from "./classifier.ts";

/** What the batch is for: each has its own default and schema maximum. */
export type BatchKind = "attack" | "evaluate" | "detect" | "pud_detect";

/** Today's schema defaults, kept bit for bit on wasm and cpu. */
export const CPU_BATCH_DEFAULTS: Readonly<Record<BatchKind, number>> = Object.freeze({
  attack: 128,
  evaluate: 256,
  detect: 128,
  pud_detect: 128,
});

/**
 * The webgpu defaults before the budget clamp. 1024 images of the 28×28 small CNN is about 1 GiB
 * of activations with gradients, the default budget's edge; chosen by reasoning about a real GPU
 * (thousands of cores: a conv layer needs batch × H × W ≥ 10⁵ output rows to fill them), not
 * measured on one. `pud_detect` is an SGD mini-batch, so it does not change.
 */
export const WEBGPU_BATCH_DEFAULTS: Readonly<Record<BatchKind, number>> = Object.freeze({
  attack: 1024,
  evaluate: 1024,
  detect: 1024,
  pud_detect: 128,
});

/** The schemas' maxima (src/attacks/options.ts, src/metrics/evaluate_options.ts, src/detect/options.ts). */
export const BATCH_MAXIMA: Readonly<Record<BatchKind, number>> = Object.freeze({
  attack: 1024,
  evaluate: 4096,
  detect: 1024,
  pud_detect: 1024,
});

/**
 * The batch size a request gets when it does not set one.
 *
 * @param kind what the batch is for.
 * @param backend the backend the engine runs on.
 * @param fits the largest batch the model's activation budget allows, as the request uses the
 *   model (with or without gradients); default unbounded. Ignored on wasm/cpu.
 * @returns on wasm/cpu {@link CPU_BATCH_DEFAULTS}; on webgpu {@link WEBGPU_BATCH_DEFAULTS}
 *   clamped to `fits` and to {@link BATCH_MAXIMA}, at least 1 (a model that cannot take one
 *   image is then refused with 413 by the classifier's own check, as on wasm); a kind that does
 *   not follow the backend ({@link followsBackend}) gets its one value, unclamped.
 */
export function defaultBatchSize(
  kind: BatchKind,
  backend: BackendName,
  fits = Infinity,
): number {
  // A kind whose value does not follow the backend is not clamped either (pud_detect: the same
  // mini-batch, and the same 413 when it does not fit, on every backend).
  if (backend !== "webgpu" || !followsBackend(kind)) return CPU_BATCH_DEFAULTS[kind];
  return Math.max(1, Math.min(WEBGPU_BATCH_DEFAULTS[kind], BATCH_MAXIMA[kind], fits));
}

/** Whether the default of `kind` differs by backend. */
export function followsBackend(kind: BatchKind): boolean {
  return WEBGPU_BATCH_DEFAULTS[kind] !== CPU_BATCH_DEFAULTS[kind];
}

/**
 * The batch size a request runs with: `requested` when the caller set one (kept as sent; the
 * classifier refuses it with 413 if it does not fit), otherwise {@link defaultBatchSize} with the
 * classifier's own largest batch (`maxBatch`, absent on hand-built classifiers: unbounded).
 *
 * @param backward whether the batch goes through a backward pass (attacks, robust accuracy).
 */
export function resolveBatchSize(
  kind: BatchKind,
  requested: number | undefined,
  backend: BackendName,
  clf: Pick<Classifier, "maxBatch">,
  backward: boolean,
): number {
  if (requested !== undefined) return requested;
  // The budget matters only where the default is clamped.
  const clamped = backend === "webgpu" && followsBackend(kind);
  return defaultBatchSize(kind, backend, clamped ? clf.maxBatch?.(backward) : undefined);
}

/** The docs/OpenAPI wording of a default, e.g. "default: 128 on wasm/cpu, 1024 on webgpu (…)". */
export function batchDefaultText(kind: BatchKind): string {
  const cpu = CPU_BATCH_DEFAULTS[kind];
  const gpu = WEBGPU_BATCH_DEFAULTS[kind];
  if (!followsBackend(kind)) return `default: ${cpu} on every backend`;
  return `default: ${cpu} on wasm/cpu, ${gpu} on webgpu (lowered to the largest batch the ` +
    "model's activation budget allows)";
}

/**
 * The report's detection step: `POST /v1/detect` with the infected model on the extra set (and
 * the ground truth when the caller has it, which adds precision, recall, AUROC and the ROC curve).
 */
import { parseNpy } from "../src/io/npy.ts";
import { appendBundle, type BundleOnDisk } from "./bundle_files.ts";
import { postWithRetry, type RetryOptions } from "./http.ts";
import { type DetectionSection, FLAGGED_SHOWN } from "./report_data.ts";

export interface DetectionInput {
  server: string;
  model: BundleOnDisk;
  images: Uint8Array;
  labels: Uint8Array;
  /** `.npy` or JSON array, 1 = poisoned. */
  isPoison?: Uint8Array;
  params: Record<string, unknown>;
  retry: RetryOptions;
}

/** Runs the detector and keeps what the report shows; `backend` is the server's. */
export async function runDetection(
  input: DetectionInput,
): Promise<{ section: DetectionSection; backend?: string }> {
  const t0 = performance.now();
  const blob = (b: Uint8Array) => new Blob([b as Uint8Array<ArrayBuffer>]);
  const res = await postWithRetry(`${input.server}/v1/detect`, () => {
    const f = new FormData();
    appendBundle(f, input.model);
    f.append("images", blob(input.images), "images.npy");
    f.append("labels", blob(input.labels), "labels.npy");
    if (input.isPoison) f.append("is_poison", blob(input.isPoison), "is_poison.npy");
    f.append("params", JSON.stringify(input.params));
    return f;
  }, input.retry);
  const r = await res.json();
  return {
    section: detectionReport(
      r,
      input.params,
      (performance.now() - t0) / 1000,
      intArray(input.labels),
      input.isPoison ? intArray(input.isPoison) : undefined,
    ),
    backend: typeof r.backend === "string" ? r.backend : undefined,
  };
}

/**
 * The report's view of a `/v1/detect` answer: figures, ROC points, and the flagged images with
 * their scores, highest first. `labels` come from the answer's per-image data when present.
 */
export function detectionReport(
  r: {
    method?: string;
    n?: number;
    flagged?: number;
    suspected_target?: number | null;
    threshold?: unknown;
    metrics?: Record<string, unknown> & { roc?: { fpr: number; tpr: number }[] };
    scores?: number[];
    flagged_indices?: number[];
  },
  params: Record<string, unknown>,
  seconds: number,
  labels?: ArrayLike<number>,
  isPoison?: ArrayLike<number>,
): DetectionSection {
  const scores = r.scores ?? [];
  const flaggedIdx = [...(r.flagged_indices ?? [])].sort((a, b) =>
    (scores[b] ?? -Infinity) - (scores[a] ?? -Infinity) || a - b
  );
  const num = (v: unknown) => typeof v === "number" && Number.isFinite(v) ? v : undefined;
  const m = r.metrics;
  return {
    method: String(r.method ?? params.method ?? "?"),
    params,
    n: r.n ?? scores.length,
    flagged: r.flagged ?? flaggedIdx.length,
    suspected_target: r.suspected_target ?? null,
    threshold: r.threshold,
    metrics: m
      ? {
        precision: num(m.precision),
        recall: num(m.recall),
        f1: num(m.f1),
        auroc: num(m.auroc),
        tp: num(m.tp),
        fp: num(m.fp),
        fn: num(m.fn),
        tn: num(m.tn),
      }
      : undefined,
    roc: (m?.roc ?? []).map((p) => ({ fpr: p.fpr, tpr: p.tpr })),
    flagged_images: flaggedIdx.slice(0, FLAGGED_SHOWN).map((index) => ({
      index,
      score: scores[index] ?? NaN,
      label: labels?.[index] ?? -1,
      ...(isPoison ? { poisoned: isPoison[index] !== 0 } : {}),
    })),
    seconds: Math.round(seconds * 10) / 10,
  };
}

/** Integers from a `.npy` (any integer or bool dtype) or a JSON array. */
export function intArray(bytes: Uint8Array): number[] {
  if (bytes[0] === 0x93) {
    const a = parseNpy(bytes);
    return Array.from(a.data as ArrayLike<number | bigint>, (v) => Number(v));
  }
  const v = JSON.parse(new TextDecoder().decode(bytes));
  if (!Array.isArray(v)) throw new Error("expected a JSON array of integers");
  return v.map(Number);
}

/**
 * The one signature every poisoned-image detector shares:
 * `(clf, images, labels, options, ctx) → DetectResult`. Scores are oriented so that HIGHER means
 * MORE LIKELY POISONED, whatever the method, so thresholds, ROC curves and reports are uniform.
 */
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";

export interface DetectContext {
  /** Fires when the client disconnects or the time budget runs out; check between batches. */
  signal?: AbortSignal;
  /** Images per forward/backward pass. */
  batchSize: number;
}

export interface DetectResult {
  /** One score per image; higher = more suspicious. */
  scores: Float32Array;
  /** 1 = flagged as poisoned. */
  flags: Uint8Array;
  /** How the flags were derived from the scores, e.g. `{ rule: "mad", value: 3.1 }`. */
  threshold: { rule: string; value: number; description: string };
  /** The class the detector believes the backdoor targets, when it has an opinion. */
  suspectedTarget?: number;
  /** Method-specific diagnostics (e.g. per-class spectral scores, cluster sizes). */
  diagnostics?: Record<string, unknown>;
}

export type Detector<O> = (
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  options: O,
  ctx: DetectContext,
) => Promise<DetectResult>;

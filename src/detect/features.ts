/**
 * The activations a feature-space detector (spectral signatures, activation clustering, SPECTRE)
 * reads: its `layer` (default the penultimate representation) of every image, in the request's
 * batches, under its signal, normalised as its `preprocess` says; checked for cancellation once
 * the pass is over.
 *
 * @module
 */
import type { ImageBatch } from "../io/images.ts";
import type { Classifier, Preprocess } from "../model/classifier.ts";
import { type Features, featuresOf } from "../model/features.ts";
import type { DetectContext } from "./types.ts";

export async function detectorFeatures(
  clf: Classifier,
  images: ImageBatch,
  options: { layer?: string; preprocess?: Preprocess },
  ctx: DetectContext,
  logits = false,
): Promise<Features> {
  const f = await featuresOf(clf, images, {
    layer: options.layer,
    batchSize: ctx.batchSize,
    signal: ctx.signal,
    preprocess: options.preprocess,
    logits,
  });
  ctx.signal?.throwIfAborted();
  return f;
}

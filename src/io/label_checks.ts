/**
 * Checks of labels and targets that library callers (attacks, detection, metrics, the round) pass
 * in, against a batch and a model's class count. They sit in `io/` beside the label parser so that
 * every folder above can share them without importing one another.
 */
import { ShapeMismatchError, UnprocessableError } from "../errors.ts";
import type { ImageBatch } from "./images.ts";

/** Labels must be one per image, each a class of the model. */
export function checkLabels(images: ImageBatch, labels: Int32Array, k: number): void {
  if (labels.length !== images.shape[0]) {
    throw new ShapeMismatchError(
      `there are ${images.shape[0]} images but ${labels.length} labels; send one label per image`,
    );
  }
  const bad = labels.findIndex((y) => !(y >= 0 && y < k));
  if (bad >= 0) {
    throw new UnprocessableError(
      `label ${labels[bad]} of image ${bad} is not a class of the model; allowed: 0..${k - 1}`,
      { index: bad },
    );
  }
}

/** A target class of the model. */
export function checkTarget(target: number, k: number): void {
  if (!(Number.isInteger(target) && target >= 0 && target < k)) {
    throw new UnprocessableError(
      `backdoor target ${target} is not a class of the model; allowed: 0..${k - 1}`,
    );
  }
}

/**
 * Builds a {@link Classifier} from validated bundle artifacts (see `src/io/model_bundle.ts`):
 * loads the LayersModel from memory, checks that it maps `[N,H,W,C]` images to `[N,K]` scores,
 * and wraps it so `logits` applies the declared preprocessing and returns pre-softmax scores.
 */
import * as tf from "@tensorflow/tfjs";
import { ShapeMismatchError, UnsupportedModelError, ValidationError } from "../errors.ts";
import {
  type BundleArtifacts,
  type BundleFile,
  linearizeOutput,
  saveBundle,
} from "../io/model_bundle.ts";
import type { Classifier, Preprocess } from "./classifier.ts";

export interface LoadedClassifier extends Classifier {
  /** The output activation the bundle declared ("softmax" when it was switched to linear). */
  readonly outputActivation: string;
  /** Frees the model's weights and the preprocessing constants. */
  dispose(): void;
  /** The model in wire format, with `outputActivation` restored on its output layer. */
  save(): Promise<{ modelJson: Uint8Array; weights: BundleFile[] }>;
}

/** Longest tfjs error text we pass on to the user. */
const MAX_CAUSE_CHARS = 300;

// Loads run one at a time so that, when one fails half-built, the variables it leaves behind can
// be told apart from those of a concurrent load (see loadLayersModelSafely).
let loadQueue: Promise<unknown> = Promise.resolve();

type JsonObject = Record<string, unknown>;

/** Every layer name in a topology, nested models included. */
function layerNames(node: unknown, out = new Set<string>(), depth = 0): Set<string> {
  if (depth > 64 || typeof node !== "object" || node === null) return out;
  if (Array.isArray(node)) {
    for (const n of node) layerNames(n, out, depth + 1);
    return out;
  }
  const obj = node as JsonObject;
  const config = obj.config;
  if (typeof obj.class_name === "string" && typeof config === "object" && config !== null) {
    const name = (config as JsonObject).name;
    if (typeof name === "string") out.add(name);
    const layers = Array.isArray(config) ? config : (config as JsonObject).layers;
    if (Array.isArray(layers)) layerNames(layers, out, depth + 1);
  }
  return out;
}

/**
 * `tf.loadLayersModel` that leaves nothing behind when it fails: tfjs builds layers (creating
 * their weight variables) before it can notice a bad config or a weight mismatch, and the
 * half-built model is unreachable from the rejected promise. Variables registered after our load
 * handler ran, whose scope is one of this topology's layer names, are ours to dispose.
 */
async function loadLayersModelSafely(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  const inner = tf.io.fromMemory(artifacts);
  let before: Set<string> | undefined;
  const handler: tf.io.IOHandler = {
    load: () => {
      before = new Set(Object.keys(tf.engine().registeredVariables));
      return inner.load!();
    },
  };
  try {
    return await tf.loadLayersModel(handler);
  } catch (err) {
    if (before !== undefined) {
      const ours = layerNames(artifacts.modelTopology);
      for (const [name, v] of Object.entries(tf.engine().registeredVariables)) {
        if (!before.has(name) && ours.has(name.split("/")[0])) v.dispose();
      }
    }
    const cause = (err instanceof Error ? err.message : String(err)).slice(0, MAX_CAUSE_CHARS);
    throw new UnsupportedModelError(
      `the model could not be built from its topology and weights: ${cause}`,
      { cause },
    );
  }
}

function checkPreprocess(p: Preprocess): void {
  const ok = (xs: unknown) =>
    Array.isArray(xs) && xs.length > 0 && xs.every((v) => typeof v === "number" && isFinite(v));
  if (!ok(p.mean) || !ok(p.std) || p.std.some((s) => s <= 0)) {
    throw new ValidationError(
      "preprocess must be {mean: number[], std: number[]} with finite values and every std > 0",
    );
  }
}

/** `[H,W,C]` of a `[null,H,W,C]` input, or undefined. */
function imageShape(shape: (number | null)[]): [number, number, number] | undefined {
  if (shape.length !== 4 || shape[0] !== null) return undefined;
  const [h, w, c] = shape.slice(1);
  if (![h, w, c].every((d) => typeof d === "number" && d > 0)) return undefined;
  return [h!, w!, c!];
}

/** Checks the model's signature; returns `[H,W,C]` and K or throws a 422. */
function checkSignature(model: tf.LayersModel): { inputShape: [number, number, number]; k: number } {
  const inShapes = model.inputs.map((t) => t.shape);
  const outShapes = model.outputs.map((t) => t.shape);
  const inputShape = inShapes.length === 1 ? imageShape(inShapes[0]) : undefined;
  if (inputShape === undefined) {
    throw new UnsupportedModelError(
      `the model's input shape is ${JSON.stringify(inShapes)}; exactly one input of shape ` +
        "[null, H, W, C] (NHWC images with fixed H, W, C) is supported",
    );
  }
  const out = outShapes.length === 1 ? outShapes[0] : undefined;
  const k = out?.length === 2 && out[0] === null ? out[1] : null;
  if (typeof k !== "number" || k < 2) {
    throw new UnsupportedModelError(
      `the model's output shape is ${JSON.stringify(outShapes)}; exactly one output of shape ` +
        "[null, K] with K >= 2 classes is supported",
    );
  }
  return { inputShape, k };
}

/**
 * Loads a classifier from artifacts returned by `parseBundle` (nothing is fetched: the model comes
 * from `tf.io.fromMemory`).
 *
 * - A softmax output is switched to linear before loading (if `parseBundle` has not already done
 *   so), so `logits` returns pre-softmax scores; `outputActivation` records it and `save()`
 *   restores it.
 * - `preprocess` ({mean, std}, one entry per channel; default none) is applied inside `logits` as
 *   `(x - mean) / std`, so attacks still perturb pixels in [0,1].
 *
 * Throws `UnsupportedModelError` (422) unless the model maps `[null,H,W,C]` to `[null,K]` with
 * K >= 2 or when tfjs cannot build it, `ValidationError` (400) for a non-finite or non-positive
 * preprocess, and `ShapeMismatchError` (422) when preprocess does not have C entries.
 */
export async function loadClassifier(
  artifacts: BundleArtifacts,
  preprocess?: Preprocess,
): Promise<LoadedClassifier> {
  if (preprocess !== undefined) checkPreprocess(preprocess);
  let outputActivation = artifacts.originalOutputActivation;
  let modelTopology = artifacts.modelTopology;
  if (outputActivation === undefined) {
    // Artifacts that did not come through parseBundle: linearize a copy, never the caller's.
    modelTopology = structuredClone(modelTopology) as JsonObject;
    outputActivation = linearizeOutput(modelTopology as JsonObject);
  }
  const load = loadQueue.then(() =>
    loadLayersModelSafely({
      modelTopology,
      format: artifacts.format,
      weightSpecs: artifacts.weightSpecs,
      weightData: artifacts.weightData,
    })
  );
  loadQueue = load.catch(() => undefined);
  const model = await load;

  let inputShape: [number, number, number];
  let k: number;
  try {
    ({ inputShape, k } = checkSignature(model));
    const c = inputShape[2];
    if (preprocess !== undefined && (preprocess.mean.length !== c || preprocess.std.length !== c)) {
      throw new ShapeMismatchError(
        `preprocess has ${preprocess.mean.length} mean and ${preprocess.std.length} std ` +
          `entries; the model's input has ${c} channel(s), so both need ${c}`,
      );
    }
  } catch (err) {
    model.dispose();
    throw err;
  }

  // (x - mean) / std folded into one multiply-add; kept for the model's lifetime.
  const scale = preprocess ? tf.tensor1d(preprocess.std.map((s) => 1 / s)) : undefined;
  const shift = preprocess ? tf.tensor1d(preprocess.mean.map((m, i) => -m / preprocess.std[i])) : undefined;
  let disposed = false;
  const activation = outputActivation;

  return {
    model,
    inputShape,
    numClasses: k,
    outputActivation: activation,
    logits(x: tf.Tensor4D, training = false): tf.Tensor2D {
      const [, h, w, c] = x.shape;
      if (x.rank !== 4 || h !== inputShape[0] || w !== inputShape[1] || c !== inputShape[2]) {
        throw new ShapeMismatchError(
          `images have shape [${x.shape.join(", ")}]; the model takes [N, ${inputShape.join(", ")}]`,
        );
      }
      return tf.tidy(() => {
        const input = scale && shift ? x.mul(scale).add(shift) : x;
        return model.apply(input, { training }) as tf.Tensor2D;
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      model.dispose();
      tf.dispose([scale, shift].filter((t): t is tf.Tensor1D => t !== undefined));
    },
    save() {
      return saveBundle(model, { outputActivation: activation });
    },
  };
}

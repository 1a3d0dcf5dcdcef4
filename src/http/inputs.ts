/**
 * Turning a compute request's parts into validated inputs: the model bundle, the images and the
 * labels, each checked against the config's limits and against each other. Shared by every
 * compute route so that each validates exactly the same way.
 */
import type { Config } from "../config.ts";
import { MissingPartError, UnsupportedMediaTypeError } from "../errors.ts";
import { checkBatchFits, type ImageBatch, imagesFromFiles, imagesFromNpy } from "../io/images.ts";
import { parseLabels } from "../io/labels.ts";
import { parseBundle } from "../io/model_bundle.ts";
import type { ActivationUse } from "../io/activation_budget.ts";
import { parseNpy } from "../io/npy.ts";
import type { Preprocess } from "../model/classifier.ts";
import { loadClassifier, type LoadedClassifier } from "../model/load_classifier.ts";
import type { FilePart, Form } from "./form.ts";
import type { Part } from "./openapi.ts";

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

export function isNpy(bytes: Uint8Array): boolean {
  return NPY_MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Parsed (not yet loaded) model bundle from parts `model` + `weights`. `use` (the route's batch
 * size and whether it takes gradients) refuses a model whose activations cannot fit that batch
 * here, before the engine; without it only models that cannot run one image are refused now, and
 * the classifier checks each real batch before running it.
 */
export async function readBundle(form: Form, config: Config, prefix = "", use?: ActivationUse) {
  const model = await form.file(`${prefix}model`, true);
  const shards = await form.files(`${prefix}weights`);
  return parseBundle(
    model.bytes,
    shards.map((s) => ({ name: s.name, bytes: s.bytes })),
    {
      maxModelJsonBytes: config.MAX_MODEL_JSON_BYTES,
      maxWeightBytes: config.MAX_WEIGHT_BYTES,
      maxParams: config.MAX_MODEL_PARAMS,
      maxLayers: config.MAX_MODEL_LAYERS,
      maxActivationBytes: config.MAX_ACTIVATION_BYTES,
      use,
    },
  );
}

/** Loads a parsed bundle into a classifier (tensor work: call inside the engine queue). */
export function loadModel(
  bundle: Awaited<ReturnType<typeof readBundle>>,
  preprocess?: Preprocess,
): Promise<LoadedClassifier> {
  return loadClassifier(bundle, preprocess);
}

/** Images from `field`: one `.npy`, or one or more PNG/JPEG files. */
export async function readImages(
  form: Form,
  config: Config,
  field = "images",
  channels?: 1 | 3,
): Promise<ImageBatch> {
  const parts = await form.files(field);
  if (parts.length === 0) throw new MissingPartError(field);
  const limits = { maxImages: config.MAX_IMAGES, maxPixels: config.MAX_PIXELS };
  if (parts.some((p) => isNpy(p.bytes))) {
    if (parts.length !== 1) {
      throw new UnsupportedMediaTypeError(
        `'${field}' takes either one .npy or PNG/JPEG files, got ${parts.length} parts with a .npy among them`,
      );
    }
    const arr = parseNpy(parts[0].bytes, {
      maxBytes: config.MAX_BODY_BYTES,
      maxElements: config.MAX_PIXELS,
    });
    return imagesFromNpy(arr, limits);
  }
  return imagesFromFiles(parts.map((p) => ({ name: p.name, bytes: p.bytes })), limits, channels);
}

/** Labels from `field` (`.npy` or a JSON array), checked against count and class range. */
export async function readLabels(
  form: Form,
  field: string,
  expect: { count: number; numClasses: number },
  required = true,
): Promise<Int32Array | undefined> {
  const part: FilePart | undefined = await form.file(field, required as true);
  if (!part) return undefined;
  return parseLabels({ bytes: part.bytes, kind: isNpy(part.bytes) ? "npy" : "json" }, expect);
}

/** The channel count PNG/JPEG images should be converted to for `clf`, when it is 1 or 3. */
export function channelsOf(clf: { inputShape: [number, number, number] }): 1 | 3 | undefined {
  const c = clf.inputShape[2];
  return c === 1 || c === 3 ? c : undefined;
}

/** Images from `field`, converted to and checked against the classifier's `[H, W, C]`. */
export async function readImagesFor(
  form: Form,
  config: Config,
  clf: { inputShape: [number, number, number] },
  field = "images",
): Promise<ImageBatch> {
  const images = await readImages(form, config, field, channelsOf(clf));
  checkBatchFits(images, clf.inputShape);
  return images;
}

/** The `images` and `labels` parts, fitted to the classifier: one label per image, each a class. */
export async function readLabelledImages(
  form: Form,
  config: Config,
  clf: { inputShape: [number, number, number]; numClasses: number },
): Promise<{ images: ImageBatch; labels: Int32Array }> {
  const images = await readImagesFor(form, config, clf);
  const labels = (await readLabels(form, "labels", {
    count: images.shape[0],
    numClasses: clf.numClasses,
  }))!;
  return { images, labels };
}

/** OpenAPI descriptions of the parts every compute route shares. */
export const PARTS = {
  model: (what = "model.json of a TF.js LayersModel"): Part[] => [
    { name: "model", description: what, required: true, contentType: "application/json" },
    {
      name: "weights",
      description: "weight shards, filenames as in the manifest",
      required: true,
      multiple: true,
      contentType: "application/octet-stream",
    },
  ],
  images: (what = "one .npy (NHWC uint8 0-255 or float32 0-1) or PNG/JPEG files"): Part => ({
    name: "images",
    description: what,
    required: true,
    multiple: true,
    contentType: "application/x-npy, image/png, image/jpeg",
  }),
  labels: (what = "labels: .npy of integers or a JSON array"): Part => ({
    name: "labels",
    description: what,
    required: true,
    contentType: "application/x-npy, application/json",
  }),
} as const;

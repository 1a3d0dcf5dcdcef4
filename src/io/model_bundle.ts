/**
 * TF.js LayersModel bundles, entirely in memory: a `model.json` (`modelTopology` +
 * `weightsManifest`) and one binary part per weight shard, matched to the manifest's paths by
 * basename as `tf.io.browserFiles` does. Nothing here fetches: the paths in a manifest are only
 * names to match, and tfjs receives the validated artifacts through `tf.io.fromMemory`.
 *
 * Everything a user sends is hostile until checked: sizes are bounded before parsing, JSON depth
 * and prototype-shaped keys are refused before tfjs (whose config conversion recurses and assigns
 * keys) ever sees them, every weight is shape-, size- and finiteness-checked, and only the layer
 * classes in `supported_layers.ts` get through.
 */
import * as tf from "@tensorflow/tfjs";
import { LimitExceededError, MalformedInputError, UnsupportedModelError } from "../errors.ts";
import { CONTAINER_LAYERS, isSupportedLayer, SUPPORTED_LAYERS } from "./supported_layers.ts";
import {
  type ActivationBudget,
  type ActivationUse,
  budgetOf,
  checkActivationBudget,
  DEFAULT_MAX_ACTIVATION_BYTES,
  planActivations,
} from "./activation_budget.ts";
import { checkLayerGraph } from "./layer_graph.ts";
import { MAX_JSON_DEPTH, parseJsonBytes, showJson } from "./json_guard.ts";
import { concatBytes } from "./bytes.ts";
import { containerLayers, isJsonObject, type JsonObject } from "./keras_config.ts";

/** One uploaded file: a multipart part's filename and body. */
export interface BundleFile {
  name: string;
  bytes: Uint8Array;
}

/** Size limits a bundle must respect (all come from `src/config.ts`). */
export interface BundleLimits {
  /** Bytes of `model.json`. */
  maxModelJsonBytes: number;
  /** Bytes of all weight shards together. */
  maxWeightBytes: number;
  /** Scalar parameters across all model weights. */
  maxParams: number;
  /** Layers, counting those inside nested Sequential/Functional models. */
  maxLayers: number;
  /**
   * Bytes the activations of one batch may take (`MAX_ACTIVATION_BYTES`); default
   * {@link DEFAULT_MAX_ACTIVATION_BYTES}. See `activation_budget.ts`.
   */
  maxActivationBytes?: number;
  /**
   * How the caller will run the model, to refuse it here when that batch cannot fit. Default:
   * one image with gradients, so only a model that cannot run at all is refused at parse time;
   * the classifier then checks every real batch before it runs (see `load_classifier.ts`).
   */
  use?: ActivationUse;
}

/** The parse-time use when the caller names none: one image, forward and backward. */
export const PARSE_USE: ActivationUse = { batch: 1, backward: true };

/**
 * Validated artifacts ready for `tf.io.fromMemory`: topology (with a softmax output switched to
 * linear), float32 weight specs and one concatenated `weightData` buffer.
 */
export type BundleArtifacts = tf.io.ModelArtifacts & {
  /** The output activation found at parse time ("softmax" when it was switched to linear). */
  originalOutputActivation?: string;
  /** The static pass's per-image activation cost and the budget every batch must respect. */
  activationBudget?: ActivationBudget;
};

export { MAX_JSON_DEPTH };
/** Weights of image classifiers have rank at most 4; allow a little slack. */
export const MAX_WEIGHT_RANK = 6;
/** Largest single dimension accepted in a weight shape. */
export const MAX_WEIGHT_DIM = 2 ** 31 - 1;
/** The shard name `saveBundle` writes. */
export const SAVED_SHARD_NAME = "weights.bin";

const QUANTIZED_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

const show = showJson;

/** The file name after the last `/` or `\`, as browsers and tfjs compare shard names. */
function basename(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1];
}

function layerName(layer: JsonObject): string | undefined {
  if (typeof layer.name === "string") return layer.name;
  const config = layer.config;
  return isJsonObject(config) && typeof config.name === "string" ? config.name : undefined;
}

interface LayerCensus {
  count: number;
  unsupported: Set<string>;
}

/** Counts layers and collects unsupported class names, descending into nested models. */
function censusLayers(container: JsonObject, where: string, census: LayerCensus): void {
  const layers = containerLayers(container);
  if (layers === undefined) {
    throw new MalformedInputError(
      `${where} (${show(container.class_name)}) has no 'config.layers' array; ` +
        "a Sequential or Functional model must list its layers",
    );
  }
  layers.forEach((layer, i) => {
    const at = `${where}.layers[${i}]`;
    if (!isJsonObject(layer) || typeof layer.class_name !== "string") {
      throw new MalformedInputError(
        `${at} is not a layer object with a string 'class_name'; each layer must be ` +
          '{"class_name": ..., "config": {...}}',
      );
    }
    census.count++;
    if (!isSupportedLayer(layer.class_name)) census.unsupported.add(layer.class_name);
    else if (CONTAINER_LAYERS.has(layer.class_name)) censusLayers(layer, at, census);
  });
}

/**
 * The layer object that produces a container's single output, descending into nested models.
 * Undefined when the output cannot be pinned to one layer (several outputs, odd configs); the
 * caller's shape checks then decide.
 */
function findOutputLayer(container: JsonObject, depth = 0): JsonObject | undefined {
  if (depth > MAX_JSON_DEPTH) return undefined;
  const layers = containerLayers(container);
  if (layers === undefined || layers.length === 0) return undefined;
  let out: unknown;
  if (container.class_name === "Sequential") {
    out = layers[layers.length - 1];
  } else {
    const config = container.config;
    const outputs = isJsonObject(config) ? config.output_layers : undefined;
    if (!Array.isArray(outputs) || outputs.length !== 1) return undefined;
    const first = outputs[0];
    const name = Array.isArray(first) ? first[0] : undefined;
    if (typeof name !== "string") return undefined;
    out = layers.find((l) => isJsonObject(l) && layerName(l) === name);
  }
  if (!isJsonObject(out)) return undefined;
  if (typeof out.class_name === "string" && CONTAINER_LAYERS.has(out.class_name)) {
    return findOutputLayer(out, depth + 1);
  }
  return out;
}

/**
 * Switches a softmax output to linear, in place, so the loaded model yields logits (losses on
 * probabilities saturate and starve attacks of gradient). Handles `activation: "softmax"` on the
 * output layer (Dense, Conv, Activation) and a trailing `Softmax` layer, which becomes a linear
 * `Activation` with the same name. Returns "softmax" when it switched, otherwise the output
 * layer's own activation (or "linear").
 */
export function linearizeOutput(topology: JsonObject): string {
  const layer = findOutputLayer(topology);
  if (layer === undefined) return "linear";
  const config = isJsonObject(layer.config) ? layer.config : undefined;
  if (layer.class_name === "Softmax") {
    const axis = config?.axis;
    if (axis !== undefined && axis !== null && axis !== -1 && axis !== 1) {
      throw new UnsupportedModelError(
        `the output Softmax layer normalises over axis ${show(axis)}; ` +
          "only a class softmax (axis -1 or 1) is supported",
      );
    }
    layer.class_name = "Activation";
    layer.config = {
      name: config?.name ?? layerName(layer),
      trainable: config?.trainable ?? true,
      ...(config?.dtype !== undefined ? { dtype: config.dtype } : {}),
      activation: "linear",
    };
    return "softmax";
  }
  if (config === undefined || typeof config.activation !== "string") return "linear";
  if (config.activation === "softmax") {
    config.activation = "linear";
    return "softmax";
  }
  return config.activation;
}

/**
 * Puts back the output activation that {@link linearizeOutput} removed, in place. Only a linear
 * output is changed, so restoring an activation that was never switched is a no-op.
 */
export function restoreOutputActivation(topology: JsonObject, activation: string): boolean {
  if (activation === "linear") return false;
  const layer = findOutputLayer(topology);
  const config = layer && isJsonObject(layer.config) ? layer.config : undefined;
  if (config === undefined || config.activation !== "linear") return false;
  config.activation = activation;
  return true;
}

/** One manifest entry, checked. */
interface WeightEntry {
  name: string;
  shape: number[];
  numel: number;
  /** Bytes it occupies in its shard. */
  bytes: number;
  /** Optimizer slots are skipped: we never restore optimizer state from a user. */
  skip: boolean;
  quant?: { dtype: "uint8" | "uint16" | "float16"; scale: number; min: number };
}

interface WeightGroup {
  index: number;
  paths: string[];
  weights: WeightEntry[];
}

function checkWeightEntry(w: unknown, where: string, maxParams: number): WeightEntry {
  if (!isJsonObject(w) || typeof w.name !== "string" || w.name === "") {
    throw new MalformedInputError(
      `${where} is not a weight entry; each must be {"name": string, "shape": [...], "dtype": ...}`,
    );
  }
  const name = w.name;
  if (!Array.isArray(w.shape)) {
    throw new MalformedInputError(`weight '${name}' has no 'shape' array`);
  }
  if (w.shape.length > MAX_WEIGHT_RANK) {
    throw new UnsupportedModelError(
      `weight '${name}' has rank ${w.shape.length}; at most rank ${MAX_WEIGHT_RANK} is supported`,
    );
  }
  let numel = 1;
  for (const d of w.shape) {
    if (typeof d !== "number" || !Number.isInteger(d) || d < 1 || d > MAX_WEIGHT_DIM) {
      throw new UnsupportedModelError(
        `weight '${name}' has shape ${show(w.shape)}; every dimension must be an integer ` +
          `from 1 to ${MAX_WEIGHT_DIM}`,
      );
    }
    numel *= d;
  }
  if (numel > maxParams) {
    throw new LimitExceededError(
      `weight '${name}' alone has ${numel} parameters; at most ${maxParams} are allowed in a model`,
      { limit: "maxParams", maxParams },
    );
  }
  const skip = w.group === "optimizer";
  // Optimizer slots (e.g. an int32 iteration count) only need their size known to be skipped.
  const allowed = skip ? ["float32", "int32"] : ["float32"];
  if (typeof w.dtype !== "string" || !allowed.includes(w.dtype)) {
    throw new UnsupportedModelError(
      `weight '${name}' has dtype ${show(w.dtype)}; only float32 weights are supported`,
    );
  }
  if (w.quantization === undefined || w.quantization === null) {
    return { name, shape: w.shape as number[], numel, bytes: numel * 4, skip };
  }
  const q = w.quantization;
  if (!isJsonObject(q) || typeof q.dtype !== "string" || !(q.dtype in QUANTIZED_BYTES)) {
    throw new UnsupportedModelError(
      `weight '${name}' has quantization ${show(q)}; supported quantization dtypes are ` +
        "uint8, uint16 (with numeric 'scale' and 'min') and float16",
    );
  }
  const qdtype = q.dtype as "uint8" | "uint16" | "float16";
  let scale = 1, min = 0;
  if (qdtype !== "float16") {
    if (typeof q.scale !== "number" || typeof q.min !== "number") {
      throw new UnsupportedModelError(
        `weight '${name}' is ${qdtype}-quantized without numeric 'scale' and 'min'; both are required`,
      );
    }
    scale = q.scale;
    min = q.min;
  }
  if (w.dtype !== "float32") {
    throw new UnsupportedModelError(
      `weight '${name}' is quantized from ${w.dtype}; only float32 weights may be quantized`,
    );
  }
  return {
    name,
    shape: w.shape as number[],
    numel,
    bytes: numel * QUANTIZED_BYTES[qdtype],
    skip,
    quant: { dtype: qdtype, scale, min },
  };
}

function checkManifest(manifest: unknown[], limits: BundleLimits): WeightGroup[] {
  const groups: WeightGroup[] = [];
  const seen = new Set<string>();
  let params = 0;
  manifest.forEach((g, index) => {
    const where = `weightsManifest[${index}]`;
    if (
      !isJsonObject(g) || !Array.isArray(g.paths) || !g.paths.every((p) => typeof p === "string") ||
      !Array.isArray(g.weights)
    ) {
      throw new MalformedInputError(
        `${where} is not a weight group; each must be {"paths": [string, ...], "weights": [...]}`,
      );
    }
    const weights = g.weights.map((w, i) =>
      checkWeightEntry(w, `${where}.weights[${i}]`, limits.maxParams)
    );
    for (const w of weights) {
      if (seen.has(w.name)) {
        throw new UnsupportedModelError(
          `the weight name '${w.name}' appears more than once in weightsManifest; ` +
            "weight names must be unique",
        );
      }
      seen.add(w.name);
      if (!w.skip) params += w.numel;
    }
    if (params > limits.maxParams) {
      throw new LimitExceededError(
        `the model has more than ${limits.maxParams} parameters (${params} counted so far); ` +
          `at most ${limits.maxParams} are allowed`,
        { limit: "maxParams", maxParams: limits.maxParams },
      );
    }
    groups.push({ index, paths: g.paths as string[], weights });
  });
  return groups;
}

/** Maps each manifest path to its uploaded shard, refusing missing, extra and ambiguous names. */
function matchShards(groups: WeightGroup[], shards: BundleFile[]): Map<string, Uint8Array> {
  const uploaded = new Map<string, Uint8Array>();
  for (const s of shards) {
    const name = basename(s.name);
    if (uploaded.has(name)) {
      throw new UnsupportedModelError(
        `two weights parts are named '${name}'; each shard must be uploaded exactly once`,
      );
    }
    uploaded.set(name, s.bytes);
  }
  const wanted = new Set<string>();
  for (const g of groups) {
    for (const p of g.paths) {
      const name = basename(p);
      if (wanted.has(name)) {
        throw new UnsupportedModelError(
          `weightsManifest names the shard '${name}' more than once; shard file names must be unique`,
        );
      }
      wanted.add(name);
    }
  }
  const missing = [...wanted].filter((n) => !uploaded.has(n));
  if (missing.length > 0) {
    throw new UnsupportedModelError(
      `missing weight shard(s) ${missing.map((n) => `'${n}'`).join(", ")}; upload one 'weights' ` +
        `part per manifest path, named ${[...wanted].map((n) => `'${n}'`).join(", ")}`,
      { missing, expected: [...wanted] },
    );
  }
  const extra = [...uploaded.keys()].filter((n) => !wanted.has(n));
  if (extra.length > 0) {
    throw new UnsupportedModelError(
      `weight shard(s) ${extra.map((n) => `'${n}'`).join(", ")} are not in weightsManifest; ` +
        `expected exactly ${[...wanted].map((n) => `'${n}'`).join(", ") || "no shards"}`,
      { extra, expected: [...wanted] },
    );
  }
  return uploaded;
}

/** IEEE 754 half to single precision. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** One buffer of `parts`: the part itself when there is one (a shard is not copied), else a join. */
function joined(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : concatBytes(parts);
}

/**
 * Decodes every model weight into one float32 buffer (dequantizing uint8/uint16/float16 as tfjs
 * does: `q * scale + min`), refusing shards whose size disagrees with the manifest and any
 * non-finite value.
 */
function decodeWeights(
  groups: WeightGroup[],
  shardBytes: Map<string, Uint8Array>,
): { specs: tf.io.WeightsManifestEntry[]; data: ArrayBuffer } {
  const total = groups.reduce(
    (n, g) => n + g.weights.reduce((m, w) => m + (w.skip ? 0 : w.numel), 0),
    0,
  );
  const data = new ArrayBuffer(total * 4);
  const out = new Float32Array(data);
  const out8 = new Uint8Array(data);
  const specs: tf.io.WeightsManifestEntry[] = [];
  let o = 0;
  for (const g of groups) {
    const names = g.paths.map(basename);
    const bytes = joined(names.map((n) => shardBytes.get(n)!));
    const need = g.weights.reduce((n, w) => n + w.bytes, 0);
    if (bytes.byteLength !== need) {
      throw new UnsupportedModelError(
        `weight shard(s) ${names.map((n) => `'${n}'`).join(", ")} hold ${bytes.byteLength} ` +
          `bytes but weightsManifest[${g.index}] describes ${need}; the sizes must match exactly`,
        { shards: names, actualBytes: bytes.byteLength, expectedBytes: need },
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let off = 0;
    for (const w of g.weights) {
      if (!w.skip) {
        const q = w.quant;
        if (q === undefined) {
          out8.set(bytes.subarray(off, off + w.bytes), o * 4);
        } else if (q.dtype === "uint8") {
          for (let i = 0; i < w.numel; i++) out[o + i] = bytes[off + i] * q.scale + q.min;
        } else if (q.dtype === "uint16") {
          for (let i = 0; i < w.numel; i++) {
            out[o + i] = view.getUint16(off + 2 * i, true) * q.scale + q.min;
          }
        } else {
          for (let i = 0; i < w.numel; i++) {
            out[o + i] = halfToFloat(view.getUint16(off + 2 * i, true));
          }
        }
        for (let i = 0; i < w.numel; i++) {
          const v = out[o + i];
          if (!Number.isFinite(v)) {
            throw new UnsupportedModelError(
              `weight '${w.name}' holds ${v} at flat index ${i}; all weights must be finite`,
              { weight: w.name, index: i },
            );
          }
        }
        specs.push({ name: w.name, shape: w.shape, dtype: "float32" });
        o += w.numel;
      }
      off += w.bytes;
    }
  }
  return { specs, data };
}

/**
 * Validates a `model.json` and its weight shards and returns tfjs `ModelArtifacts` with the
 * topology, float32 weight specs and one concatenated `weightData` buffer. A softmax output is
 * switched to linear (see {@link linearizeOutput}) and recorded in `originalOutputActivation`.
 *
 * Throws `MalformedInputError` (400) for unparseable, too deep or mis-structured JSON,
 * `UnsupportedModelError` (422) for graph models, unsupported layers or dtypes, duplicate layer
 * names, impossible layer shapes (a zero-size output, a zero stride, ...), shard mismatches and
 * non-finite weights, and `LimitExceededError` (413) past `limits`, activations of `limits.use`
 * over `limits.maxActivationBytes` included.
 */
export function parseBundle(
  modelJson: Uint8Array,
  shards: BundleFile[],
  limits: BundleLimits,
): BundleArtifacts {
  if (modelJson.byteLength > limits.maxModelJsonBytes) {
    throw new LimitExceededError(
      `model.json is ${modelJson.byteLength} bytes; at most ${limits.maxModelJsonBytes} are allowed`,
      { limit: "maxModelJsonBytes", maxModelJsonBytes: limits.maxModelJsonBytes },
    );
  }
  const shardTotal = shards.reduce((n, s) => n + s.bytes.byteLength, 0);
  if (shardTotal > limits.maxWeightBytes) {
    throw new LimitExceededError(
      `the weight shards total ${shardTotal} bytes; at most ${limits.maxWeightBytes} are allowed`,
      { limit: "maxWeightBytes", maxWeightBytes: limits.maxWeightBytes },
    );
  }
  // Depth (before parsing) and prototype-shaped keys are refused here, before tfjs, whose config
  // conversion recurses and assigns keys, ever sees the document.
  const doc = parseJsonBytes(modelJson, "model.json");
  if (!isJsonObject(doc)) {
    throw new MalformedInputError(
      `model.json must be a JSON object with 'modelTopology' and 'weightsManifest', got ${
        Array.isArray(doc) ? "an array" : show(doc)
      }`,
    );
  }
  if (doc.format !== undefined && doc.format !== "layers-model") {
    throw new UnsupportedModelError(
      `model.json has format ${show(doc.format)}; only TF.js LayersModel bundles ` +
        '(format "layers-model", from tfjs model.save() or tensorflowjs_converter ' +
        "--output_format=tfjs_layers_model) are supported",
    );
  }
  if (!isJsonObject(doc.modelTopology)) {
    throw new MalformedInputError(
      "model.json has no 'modelTopology' object; a TF.js LayersModel model.json needs one",
    );
  }
  if (!Array.isArray(doc.weightsManifest)) {
    throw new MalformedInputError(
      "model.json has no 'weightsManifest' array; a TF.js LayersModel model.json needs one",
    );
  }
  // Keras' full-model JSON wraps the architecture in model_config next to training_config,
  // which we drop: a user's optimizer settings are not ours to restore.
  let topology = doc.modelTopology;
  if (topology.model_config !== undefined) {
    if (!isJsonObject(topology.model_config)) {
      throw new MalformedInputError("modelTopology.model_config must be an object");
    }
    topology = topology.model_config;
  }
  if (typeof topology.class_name !== "string") {
    throw new UnsupportedModelError(
      "modelTopology has no 'class_name'; it looks like a graph model, and only Keras-style " +
        "LayersModel topologies (Sequential, Functional) are supported",
    );
  }
  if (!CONTAINER_LAYERS.has(topology.class_name)) {
    throw new UnsupportedModelError(
      `modelTopology is a ${show(topology.class_name)}; the top level must be one of ` +
        [...CONTAINER_LAYERS].join(", "),
    );
  }
  const census: LayerCensus = { count: 0, unsupported: new Set() };
  censusLayers(topology, "modelTopology", census);
  if (census.count > limits.maxLayers) {
    throw new LimitExceededError(
      `the model has ${census.count} layers; at most ${limits.maxLayers} are allowed`,
      { limit: "maxLayers", maxLayers: limits.maxLayers },
    );
  }
  if (census.unsupported.size > 0) {
    const bad = [...census.unsupported].sort();
    const ok = [...SUPPORTED_LAYERS, ...CONTAINER_LAYERS];
    throw new UnsupportedModelError(
      `unsupported layer class(es): ${bad.join(", ")}; supported classes are ${ok.join(", ")}`,
      { unsupported: bad, supported: ok },
    );
  }
  checkLayerGraph(topology);
  // Shapes and activation bytes before anything else can allocate (tfjs included).
  const use = limits.use ?? PARSE_USE;
  const activationBudget = budgetOf(
    planActivations(topology),
    limits.maxActivationBytes ?? DEFAULT_MAX_ACTIVATION_BYTES,
    use.backward,
  );
  checkActivationBudget(activationBudget, use.batch);
  const groups = checkManifest(doc.weightsManifest, limits);
  const shardBytes = matchShards(groups, shards);
  const { specs, data } = decodeWeights(groups, shardBytes);
  const originalOutputActivation = linearizeOutput(topology);
  return {
    modelTopology: topology,
    format: "layers-model",
    generatedBy: typeof doc.generatedBy === "string" ? doc.generatedBy : undefined,
    convertedBy: typeof doc.convertedBy === "string" ? doc.convertedBy : null,
    weightSpecs: specs,
    weightData: data,
    originalOutputActivation,
    activationBudget,
  };
}

/**
 * Serialises a model to the wire format: `model.json` whose manifest names one shard
 * `weights.bin`, and that shard. `outputActivation` (what {@link linearizeOutput} removed at
 * load) is written back onto the output layer so the bundle behaves as the user's original;
 * `editTopology` sees the topology last (the loader uses it to put back initializer configs).
 */
export async function saveBundle(
  model: tf.LayersModel,
  opts: { outputActivation?: string; editTopology?: (topology: Record<string, unknown>) => void } =
    {},
): Promise<{ modelJson: Uint8Array; weights: BundleFile[] }> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler((artifacts) => {
    saved = artifacts;
    return Promise.resolve({
      modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" },
    });
  }));
  const artifacts = saved!;
  const topology = artifacts.modelTopology as JsonObject;
  if (opts.outputActivation !== undefined) {
    restoreOutputActivation(topology, opts.outputActivation);
  }
  opts.editTopology?.(topology);
  const raw = artifacts.weightData ?? new ArrayBuffer(0);
  const buffers = Array.isArray(raw) ? raw : [raw];
  const bytes = joined(buffers.map((b) => new Uint8Array(b)));
  const json = {
    format: "layers-model",
    generatedBy: artifacts.generatedBy,
    convertedBy: null,
    modelTopology: topology,
    weightsManifest: [{ paths: [SAVED_SHARD_NAME], weights: artifacts.weightSpecs ?? [] }],
  };
  return {
    modelJson: new TextEncoder().encode(JSON.stringify(json)),
    weights: [{ name: SAVED_SHARD_NAME, bytes }],
  };
}

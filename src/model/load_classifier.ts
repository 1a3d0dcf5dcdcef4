/**
 * Builds a {@link Classifier} from validated bundle artifacts (see `src/io/model_bundle.ts`):
 * loads the LayersModel from memory, checks that it maps `[N,H,W,C]` images to `[N,K]` scores,
 * and wraps it so `logits` applies the declared preprocessing and returns pre-softmax scores.
 */
import * as tf from "@tensorflow/tfjs";
import { ShapeMismatchError, UnsupportedModelError, ValidationError } from "../errors.ts";
import { CONTAINER_LAYERS } from "../io/supported_layers.ts";
import {
  type BundleArtifacts,
  type BundleFile,
  linearizeOutput,
  saveBundle,
} from "../io/model_bundle.ts";
import type { Classifier, Preprocess } from "./classifier.ts";
import { pruneConvGradients } from "./conv_grad_path.ts";
import { MIN_STD } from "./preprocess_schema.ts";
import { MAX_JSON_DEPTH } from "../io/json_guard.ts";
import {
  type ActivationBudget,
  budgetOf,
  checkActivationBudget,
  DEFAULT_MAX_ACTIVATION_BYTES,
  maxBatchFor,
  perSampleBytesOfShapes,
  planActivations,
} from "../io/activation_budget.ts";

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

// Model builds run one at a time (see buildModel).
let loadQueue: Promise<unknown> = Promise.resolve();

type JsonObject = Record<string, unknown>;

/** Calls `fn` on every layer of a topology, nested models included, with its path of names. */
function forEachLayer(
  container: JsonObject,
  fn: (layer: JsonObject, path: string) => void,
  prefix = "",
  depth = 0,
): void {
  const config = container.config;
  const layers = Array.isArray(config)
    ? config
    : typeof config === "object" && config !== null
    ? (config as JsonObject).layers
    : undefined;
  if (!Array.isArray(layers) || depth > MAX_JSON_DEPTH) return;
  for (const layer of layers) {
    if (typeof layer !== "object" || layer === null) continue;
    const l = layer as JsonObject;
    const c = l.config as JsonObject | undefined;
    const name = typeof l.name === "string" ? l.name : typeof c?.name === "string" ? c.name : "";
    const path = `${prefix}/${name}`;
    fn(l, path);
    if (typeof l.class_name === "string" && CONTAINER_LAYERS.has(l.class_name)) {
      forEachLayer(l, fn, path, depth + 1);
    }
  }
}

/** Initializer configs by layer path, so a saved bundle carries the user's, not ours. */
type InitializerMap = Map<string, Record<string, unknown>>;

/** Weight initializer keys of the supported layers that hold weights. */
const WEIGHT_INITIALIZERS: Record<string, readonly string[]> = {
  Conv2D: ["kernel_initializer", "bias_initializer"],
  Dense: ["kernel_initializer", "bias_initializer"],
  DepthwiseConv2D: ["depthwise_initializer", "bias_initializer"],
  SeparableConv2D: ["depthwise_initializer", "pointwise_initializer", "bias_initializer"],
  BatchNormalization: [
    "gamma_initializer",
    "beta_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
  ],
  LayerNormalization: ["gamma_initializer", "beta_initializer"],
  PReLU: ["alpha_initializer"],
};

/** Values the load in progress may still allocate (loads run one at a time, see buildModel). */
let zerosBudget = Infinity;

/**
 * Zeros that refuse to allocate past {@link zerosBudget}: the manifest fixes how many weight
 * values a loadable model has, but tfjs allocates whatever the topology's shapes say before it
 * compares them with the weights, so a 3 KB model.json claiming a 10⁷-pixel input made a 2.5 GB
 * Dense kernel (found by fuzzing).
 */
class BudgetedZeros extends tf.serialization.Serializable {
  static className = "PurifierBudgetedZeros";

  apply(shape: number[], dtype?: tf.DataType): tf.Tensor {
    const n = shape.reduce((a, d) => a * d, 1);
    if (!(n <= zerosBudget)) {
      throw new UnsupportedModelError(
        `the topology creates a weight of shape [${shape.join(", ")}], more values than the ` +
          "weights manifest holds; the topology and the weights do not match",
      );
    }
    zerosBudget -= n;
    return tf.zeros(shape, dtype);
  }

  getConfig(): tf.serialization.ConfigDict {
    return {};
  }
}
tf.serialization.registerClass(BudgetedZeros);

/** Marks an initializer key we added: restoring deletes it again. */
const ABSENT = Symbol("absent");

/**
 * Replaces every `*_initializer` in a copy of the topology with {@link BudgetedZeros} (adding
 * the weight initializers a layer omits, which tfjs would fill with random defaults) and returns
 * the originals. Weights are loaded by us after the model is built (see loadModel), so tfjs would
 * otherwise run every random initializer for nothing: about 40 ms per million parameters on wasm.
 */
function zeroInitializers(topology: JsonObject): { topology: JsonObject; saved: InitializerMap } {
  const copy = structuredClone(topology);
  const saved: InitializerMap = new Map();
  const zeros = { class_name: BudgetedZeros.className, config: {} };
  forEachLayer(copy, (layer, path) => {
    const config = layer.config;
    if (typeof config !== "object" || config === null || Array.isArray(config)) return;
    const c = config as JsonObject;
    const originals = saved.get(path) ?? {};
    for (const key of Object.keys(c)) {
      const v = c[key];
      if (!key.endsWith("_initializer") || typeof v !== "object" || v === null) continue;
      originals[key] = v;
      c[key] = zeros;
    }
    const needed = typeof layer.class_name === "string"
      ? WEIGHT_INITIALIZERS[layer.class_name] ?? []
      : [];
    for (const key of needed) {
      if (c[key] !== undefined && c[key] !== null) continue;
      originals[key] = ABSENT;
      c[key] = zeros;
    }
    if (Object.keys(originals).length > 0) saved.set(path, originals);
  });
  return { topology: copy, saved };
}

function restoreInitializers(topology: JsonObject, saved: InitializerMap): void {
  forEachLayer(topology, (layer, path) => {
    const originals = saved.get(path);
    const config = layer.config;
    if (originals === undefined || typeof config !== "object" || config === null) return;
    for (const [key, v] of Object.entries(originals)) {
      if (!(key in config)) continue;
      if (v === ABSENT) delete (config as JsonObject)[key];
      else (config as JsonObject)[key] = v;
    }
  });
}

/**
 * Disposes a model we own, all of it: tfjs' refcounting leaves a nested Sequential's weights
 * alive after `model.dispose()` (it counts the inner model as used twice), so each weight
 * variable that survives is disposed directly.
 */
function disposeModel(model: tf.LayersModel): void {
  const vars = model.weights.map((w) => w.read());
  model.dispose();
  for (const v of vars) if (!v.isDisposed) v.dispose();
}

function buildError(err: unknown): UnsupportedModelError {
  const cause = (err instanceof Error ? err.message : String(err)).slice(0, MAX_CAUSE_CHARS);
  return new UnsupportedModelError(
    `the model could not be built from its topology and weights: ${cause}`,
    { cause },
  );
}

/**
 * `tf.loadLayersModel` of a topology (no weights) that leaves nothing behind when it fails: tfjs
 * builds layers, creating their weight variables, before it notices a bad config, and the
 * half-built model is unreachable from the rejected promise. Variables registered after our load
 * handler ran are ours to dispose (not only those under the topology's layer names: a layer
 * without a name gets a generated one); loads are queued one at a time, and tensor work runs one
 * request at a time, so that no other variable is mistaken for ours. Those
 * variables are returned with the model: layers that are not connected to the outputs get
 * variables too, but `model.weights` (and so `dispose()`) never sees them.
 */
async function buildModel(
  modelTopology: JsonObject,
): Promise<{ model: tf.LayersModel; created: tf.Variable[] }> {
  const inner = tf.io.fromMemory({ modelTopology, format: "layers-model" });
  let before: Set<string> | undefined;
  const handler: tf.io.IOHandler = {
    load: () => {
      before = new Set(Object.keys(tf.engine().registeredVariables));
      return inner.load!();
    },
  };
  const createdSince = () => {
    if (before === undefined) return [];
    return Object.entries(tf.engine().registeredVariables)
      .filter(([name]) => !before!.has(name))
      .map(([, v]) => v);
  };
  try {
    const model = await tf.loadLayersModel(handler);
    return { model, created: createdSince() };
  } catch (err) {
    for (const v of createdSince()) v.dispose();
    throw buildError(err);
  }
}

/**
 * Builds the model, then loads the weights ourselves rather than through tfjs: when tfjs loads
 * them and a name or shape disagrees with the topology, the decoded weight tensors it made are
 * unreachable and leak. Here they are always disposed, and so is the model on failure.
 */
async function loadModel(
  artifacts: tf.io.ModelArtifacts,
): Promise<{ model: tf.LayersModel; initializers: InitializerMap }> {
  const specs = artifacts.weightSpecs ?? [];
  const raw = artifacts.weightData ?? new ArrayBuffer(0);
  const bytes = (Array.isArray(raw) ? raw : [raw]).reduce((n, b) => n + b.byteLength, 0);
  const need = specs.reduce((n, s) => n + 4 * s.shape.reduce((a, d) => a * d, 1), 0);
  if (specs.some((s) => s.dtype !== "float32" || s.quantization) || bytes !== need) {
    // parseBundle never produces this; artifacts built by hand might.
    throw new UnsupportedModelError(
      `weight specs describe ${need} bytes of float32 but weightData holds ${bytes}; ` +
        "pass artifacts from parseBundle()",
    );
  }
  const { topology, saved } = zeroInitializers(artifacts.modelTopology as JsonObject);
  const load = loadQueue.then(async () => {
    zerosBudget = need / 4;
    try {
      return await buildModel(topology);
    } finally {
      zerosBudget = Infinity;
    }
  });
  loadQueue = load.catch(() => undefined);
  const { model, created } = await load;
  // Variables of layers cut off from the outputs: unused, and invisible to dispose().
  const used = new Set<unknown>(model.weights.map((w) => w.read()));
  for (const v of created) if (!used.has(v) && !v.isDisposed) v.dispose();
  try {
    const named = tf.io.decodeWeights(raw, specs);
    try {
      model.loadWeights(named, true);
    } finally {
      tf.dispose(Object.values(named));
    }
  } catch (err) {
    disposeModel(model);
    throw buildError(err);
  }
  return { model, initializers: saved };
}

function checkPreprocess(p: Preprocess): void {
  const ok = (xs: unknown) =>
    Array.isArray(xs) && xs.length > 0 && xs.every((v) => typeof v === "number" && isFinite(v));
  if (!ok(p.mean) || !ok(p.std) || p.std.some((s) => !(s >= MIN_STD))) {
    throw new ValidationError(
      "preprocess must be {mean: number[], std: number[]} with finite values and every std >= " +
        `${MIN_STD}`,
    );
  }
}

type Shape = (number | null)[];

/** Every leaf layer call of a built model, with the output shapes tfjs computed for it. */
function builtCalls(
  model: tf.LayersModel,
  prefix = "",
  depth = 0,
  out: { path: string; className: string; config: JsonObject; shapes: Shape[] }[] = [],
) {
  if (depth > MAX_JSON_DEPTH) return out;
  for (const layer of model.layers) {
    const path = `${prefix}${layer.name}`;
    if (layer instanceof tf.LayersModel) {
      builtCalls(layer, `${path}/`, depth + 1, out);
      continue;
    }
    let config: JsonObject = {};
    try {
      config = layer.getConfig() as JsonObject;
    } catch { /* counted with the default tensor count */ }
    for (const node of layer.inboundNodes) {
      const shapes = node.outputShapes as Shape | Shape[];
      const list = Array.isArray(shapes[0]) ? shapes as Shape[] : [shapes as Shape];
      out.push({ path, className: layer.getClassName(), config, shapes: list });
    }
  }
  return out;
}

/**
 * The activation budget of a built model: the static pass's (from the bundle, or run here for
 * artifacts that did not come through `parseBundle`), raised to what the output shapes tfjs
 * itself computed imply, so a config the static pass reads differently from tfjs cannot
 * understate the cost. A dimension below 1 in tfjs' shapes is a 422 naming the layer.
 */
function checkedBudget(
  model: tf.LayersModel,
  inputShape: [number, number, number],
  budget: ActivationBudget,
): ActivationBudget {
  const built = perSampleBytesOfShapes(builtCalls(model), inputShape);
  return {
    ...budget,
    bytesPerSample: Math.max(budget.bytesPerSample, built.bytesPerSample),
    largestTensorValues: Math.max(budget.largestTensorValues, built.largestTensorValues),
  };
}

/** Whether gradients are being recorded (inside `tf.grad`, `variableGrads`, `minimize`). */
function tapeOn(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/**
 * Gradient kernels a layer class needs that not every backend registers: tfjs-backend-wasm 4.22
 * has no depthwise backward kernels, so differentiating a DepthwiseConv2D or SeparableConv2D
 * there threw "Kernel ... not registered" (a 500) in the middle of an attack.
 */
const GRADIENT_KERNELS: Readonly<Record<string, readonly string[]>> = {
  DepthwiseConv2D: ["DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter"],
  SeparableConv2D: ["DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter"],
};

/**
 * The first layer of `model` that cannot be differentiated on the current backend, and why;
 * undefined when every layer can.
 */
function undifferentiable(
  model: tf.LayersModel,
): { path: string; className: string; why: string; kernels?: string[] } | undefined {
  const backend = tf.getBackend();
  for (const call of builtCalls(model)) {
    const need = GRADIENT_KERNELS[call.className] ?? [];
    const kernels = need.filter((k) => tf.getKernel(k, backend) === undefined);
    if (kernels.length > 0) {
      return {
        ...call,
        why: `on the ${backend} backend (tfjs 4.22 has no ${kernels.join(" or ")} kernel there)`,
        kernels,
      };
    }
    // tfjs-core's convolution gradients assert a dilation of 1 (DepthwiseConv2D ignores its own).
    const dil = call.config.dilationRate;
    const dilated = (Array.isArray(dil) ? dil : [dil]).some((d) => typeof d === "number" && d > 1);
    if ((call.className === "Conv2D" || call.className === "SeparableConv2D") && dilated) {
      return {
        ...call,
        why: `with dilation_rate ${JSON.stringify(dil)} (tfjs 4.22 has no gradient for ` +
          "dilated convolutions on any backend)",
      };
    }
  }
  return undefined;
}

/** `[H,W,C]` of a `[null,H,W,C]` input, or undefined. */
function imageShape(shape: (number | null)[]): [number, number, number] | undefined {
  if (shape.length !== 4 || shape[0] !== null) return undefined;
  const [h, w, c] = shape.slice(1);
  if (![h, w, c].every((d) => typeof d === "number" && d > 0)) return undefined;
  return [h!, w!, c!];
}

/** Checks the model's signature; returns `[H,W,C]` and K or throws a 422. */
function checkSignature(
  model: tf.LayersModel,
): { inputShape: [number, number, number]; k: number } {
  const inShapes = model.inputs.map((t) => t.shape);
  const outShapes = model.outputs.map((t) => t.shape);
  const inputShape = inShapes.length === 1 ? imageShape(inShapes[0]) : undefined;
  if (inputShape === undefined) {
    throw new UnsupportedModelError(
      `the model's input shape is ${JSON.stringify(inShapes)}; exactly one input of shape ` +
        "[null, H, W, C] (NHWC images with fixed H, W, C) is supported",
    );
  }
  // tfjs accepts any string as an InputLayer dtype and only fails when data is fed (found by
  // fuzzing): images are float32.
  if (model.inputs[0].dtype !== "float32") {
    throw new UnsupportedModelError(
      `the model's input dtype is ${JSON.stringify(model.inputs[0].dtype).slice(0, 40)}; ` +
        "only float32 image inputs are supported",
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
 * K >= 2 or when tfjs cannot build it, `ValidationError` (400) for a non-finite preprocess or a std below
 * `MIN_STD`, and `ShapeMismatchError` (422) when preprocess does not have C entries.
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
    const t = modelTopology as JsonObject;
    const inner = typeof t.model_config === "object" && t.model_config !== null
      ? t.model_config
      : t;
    modelTopology = structuredClone(inner) as JsonObject;
    outputActivation = linearizeOutput(modelTopology as JsonObject);
  }
  // Impossible shapes and models that cannot run one image are refused before tfjs builds.
  const parsed = artifacts.activationBudget ??
    budgetOf(planActivations(modelTopology as JsonObject), DEFAULT_MAX_ACTIVATION_BYTES, true);
  checkActivationBudget(parsed, 1);
  const { model, initializers } = await loadModel({ ...artifacts, modelTopology });
  // Input gradients of linear (batch-norm) convolutions no longer pay for filter gradients.
  pruneConvGradients(model);

  let inputShape: [number, number, number];
  let k: number;
  let budget: ActivationBudget;
  try {
    ({ inputShape, k } = checkSignature(model));
    budget = checkedBudget(model, inputShape, parsed);
    const c = inputShape[2];
    if (preprocess !== undefined && (preprocess.mean.length !== c || preprocess.std.length !== c)) {
      throw new ShapeMismatchError(
        `preprocess has ${preprocess.mean.length} mean and ${preprocess.std.length} std ` +
          `entries; the model's input has ${c} channel(s), so both need ${c}`,
      );
    }
  } catch (err) {
    disposeModel(model);
    throw err;
  }

  // (x - mean) / std folded into one multiply-add; kept for the model's lifetime.
  const scale = preprocess ? tf.tensor1d(preprocess.std.map((s) => 1 / s)) : undefined;
  const shift = preprocess
    ? tf.tensor1d(preprocess.mean.map((m, i) => -m / preprocess.std[i]))
    : undefined;
  let disposed = false;
  const activation = outputActivation;
  // Looked up once, on the first pass under a gradient tape (the backend is fixed by then).
  let cannotDifferentiate: ReturnType<typeof undifferentiable> | null = null;
  const checkGradients = () => {
    cannotDifferentiate ??= undifferentiable(model);
    const bad = cannotDifferentiate;
    if (bad === undefined) return;
    throw new UnsupportedModelError(
      `layer '${bad.path}' (${bad.className}) cannot be differentiated ${bad.why}; attacks, ` +
        "robust accuracy and purification need gradients through every layer" +
        (bad.kernels
          ? ": run the service with BACKEND=cpu or webgpu, or use a model without " +
            "DepthwiseConv2D/SeparableConv2D layers"
          : ": use undilated convolutions") +
        ". Predictions and gradient-free detection work.",
      { layer: bad.path, backend: tf.getBackend(), kernels: bad.kernels },
    );
  };

  return {
    model,
    inputShape,
    numClasses: k,
    outputActivation: activation,
    logits(x: tf.Tensor4D, training = false): tf.Tensor2D {
      const [, h, w, c] = x.shape;
      if (x.rank !== 4 || h !== inputShape[0] || w !== inputShape[1] || c !== inputShape[2]) {
        throw new ShapeMismatchError(
          `images have shape [${x.shape.join(", ")}]; the model takes [N, ${
            inputShape.join(", ")
          }]`,
        );
      }
      // Before any tensor of this pass exists; gradients count when a tape records them.
      const backward = tapeOn();
      checkActivationBudget({ ...budget, backward }, x.shape[0]);
      if (backward) checkGradients();
      return tf.tidy(() => {
        const input = scale && shift ? x.mul(scale).add(shift) : x;
        return model.apply(input, { training }) as tf.Tensor2D;
      });
    },
    checkBatch(n: number, backward = tapeOn()) {
      checkActivationBudget({ ...budget, backward }, n);
    },
    maxBatch(backward = true) {
      return maxBatchFor({ ...budget, backward });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      disposeModel(model);
      tf.dispose([scale, shift].filter((t): t is tf.Tensor1D => t !== undefined));
    },
    save() {
      return saveBundle(model, {
        outputActivation: activation,
        editTopology: (t) => restoreInitializers(t, initializers),
      });
    },
  };
}

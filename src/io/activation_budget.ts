/**
 * Every intermediate tensor bounded before it is allocated: a static pass over a LayersModel
 * topology (JSON only, no tfjs) that computes each layer call's output shape and the bytes of
 * activations one image costs, so a model is refused before tfjs makes any tensor when
 *
 * - a shape is impossible: a zero or negative dimension (an 11×11 `valid` convolution on a 10×10
 *   input made wasm trap with "memory access out of bounds" and left the backend broken for every
 *   later request), a zero stride, dilation, kernel or pool size, a `Reshape` that changes the
 *   size, a merge of shapes that do not broadcast → {@link UnsupportedModelError} (422);
 * - or the activations of a batch exceed the budget (`MAX_ACTIVATION_BYTES`): a 1 KB model with a
 *   huge `UpSampling2D`, `ZeroPadding2D` or a 1×1 convolution with 10⁵ filters otherwise ran the
 *   process out of memory → {@link LimitExceededError} (413).
 *
 * Both messages name the layer. The pass reads configs the way tfjs-layers 4.22 does (every key
 * camel-cased, the last spelling wins, string values camel-cased, the same defaults and the same
 * `convOutputLength`), and `tests/io/activation_budget_test.ts` compares its shapes with the ones
 * tfjs computes for a set of legal models. The loader re-checks the shapes tfjs itself computed
 * (see {@link perSampleBytesOfShapes}), so a config this pass misreads cannot slip through.
 *
 * What is counted: per layer call, the tensors it materialises of its output's size (a
 * convolution with bias and ReLU makes three: the convolution, the bias sum, the activation),
 * float32, all kept until the request's `tf.tidy` ends (which is how forward passes run here).
 * Backward passes (attacks, training) hold a gradient of about the same size per tensor, hence
 * {@link GRADIENT_FACTOR}. It is an estimate that errs high, not an exact peak.
 *
 * Pure functions on JSON: callable from the HTTP thread or the engine's worker.
 *
 * @module
 */
import { LimitExceededError, UnsupportedModelError } from "../errors.ts";
import { CONTAINER_LAYERS } from "./supported_layers.ts";
import { camel, inboundNodes, isJsonObject, type JsonObject, layersOf } from "./keras_config.ts";
import { MAX_JSON_DEPTH, showJson as show } from "./json_guard.ts";

/** A shape without its batch dimension. */
export type SampleShape = number[];

/** Bytes per activation value: every model runs in float32. */
export const BYTES_PER_VALUE = 4;
/** Activations + their gradients: what a backward pass holds compared with a forward one. */
export const GRADIENT_FACTOR = 2;
/** The batch the budget is checked at when the caller does not say (every route's default). */
export const DEFAULT_BUDGET_BATCH = 128;
/** The budget when the caller does not pass one (the config's default, `MAX_ACTIVATION_BYTES`). */
export const DEFAULT_MAX_ACTIVATION_BYTES = 1024 * 1024 * 1024;
/** tfjs indexes tensors with int32: no single tensor may hold more values than this. */
export const MAX_TENSOR_VALUES = 2 ** 31 - 1;
/** The input tensor, and preprocessing's multiply and add, each of the input's size. */
const INPUT_TENSORS = 3;

/** How a route will run the model: the images per forward pass and whether it takes gradients. */
export interface ActivationUse {
  /** Images per forward pass (a route's `batch_size`). */
  batch: number;
  /** Whether gradients flow back through the model (attacks, training); false: forward only. */
  backward: boolean;
}

/** The default use: {@link DEFAULT_BUDGET_BATCH} images with gradients (the conservative one). */
export const DEFAULT_USE: ActivationUse = { batch: DEFAULT_BUDGET_BATCH, backward: true };

/** One layer call in the plan. */
export interface LayerActivation {
  /** `outer/inner` layer names, nested models included. */
  path: string;
  className: string;
  /** Output shapes of this call, batch dimension left out. */
  outputShapes: SampleShape[];
  /** Activation bytes this call costs per image (forward). */
  bytesPerSample: number;
}

/** The result of the static pass. */
export interface ActivationPlan {
  /** The model's input `[H, W, C]` (or whatever rank it declares). */
  inputShape: SampleShape;
  /** Every leaf layer call, in evaluation order. */
  layers: LayerActivation[];
  /** Forward activation bytes per image, the input included. */
  bytesPerSample: number;
  /** Largest single tensor per image, in values. */
  largestTensorValues: number;
  /** The call with the largest `bytesPerSample`. */
  largest?: LayerActivation;
}

/** What the loader carries from the parse to the engine: the plan's totals and the budget. */
export interface ActivationBudget {
  bytesPerSample: number;
  largestTensorValues: number;
  /** The costliest layer, for messages. */
  largest?: { path: string; className: string };
  maxBytes: number;
  backward: boolean;
}

// --- reading configs as tfjs does --------------------------------------------------------------

/** A config with tfjs' key conversion: camel-cased keys, the last spelling of a key wins. */
function tsConfig(layer: JsonObject): JsonObject {
  const out: JsonObject = {};
  const c = layer.config;
  if (!isJsonObject(c)) return out;
  for (const k of Object.keys(c)) out[camel(k)] = c[k];
  return out;
}

/** A string option as tfjs sees it (string values are camel-cased too). */
function str(v: unknown): string | undefined {
  return typeof v === "string" ? camel(v) : undefined;
}

function layerName(layer: JsonObject, index: number): string {
  const c = isJsonObject(layer.config) ? layer.config : {};
  if (typeof c.name === "string" && c.name !== "") return c.name;
  if (typeof layer.name === "string" && layer.name !== "") return layer.name;
  return `#${index}`;
}

/** What a failure names: the layer's path and class. */
interface At {
  path: string;
  className: string;
}

function label(at: At): string {
  return `layer '${at.path}' (${at.className})`;
}

function impossible(at: At, why: string, details?: Record<string, unknown>): UnsupportedModelError {
  return new UnsupportedModelError(`${label(at)} ${why}`, { layer: at.path, ...details });
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1;
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

/** tfjs' `normalizeArray`: a number repeated `n` times, or an array of `n` integers. */
function intTuple(at: At, v: unknown, n: number, what: string, def?: number): number[] {
  const value = v === undefined || v === null ? def : v;
  const list = typeof value === "number" ? new Array<number>(n).fill(value) : value;
  if (!Array.isArray(list) || list.length !== n || !list.every(isPositiveInt)) {
    throw impossible(
      at,
      `has ${what} ${show(v)}; it must be a positive integer or ${n} positive integers`,
    );
  }
  return list as number[];
}

/** `[[top, bottom], [left, right]]` from tfjs' three spellings (a number, `[h, w]`, pairs). */
function pairs(
  at: At,
  v: unknown,
  what: string,
  def: number,
): [[number, number], [number, number]] {
  const value = v === undefined || v === null ? def : v;
  let p: unknown;
  if (typeof value === "number") p = [[value, value], [value, value]];
  else if (Array.isArray(value) && value.length === 2 && typeof value[0] === "number") {
    p = [[value[0], value[0]], [value[1], value[1]]];
  } else p = value;
  const ok = Array.isArray(p) && p.length === 2 &&
    p.every((q) => Array.isArray(q) && q.length === 2 && q.every(isNonNegativeInt));
  if (!ok) {
    throw impossible(
      at,
      `has ${what} ${show(v)}; it must be a non-negative integer, [rows, cols] or ` +
        "[[top, bottom], [left, right]] of non-negative integers",
    );
  }
  return p as [[number, number], [number, number]];
}

function channelsFirst(at: At, c: JsonObject): boolean {
  const f = c.dataFormat === undefined || c.dataFormat === null
    ? "channelsLast"
    : str(c.dataFormat);
  if (f !== "channelsLast" && f !== "channelsFirst") {
    throw impossible(at, `has data_format ${show(c.dataFormat)}; channels_last or channels_first`);
  }
  return f === "channelsFirst";
}

function padding(at: At, c: JsonObject): "same" | "valid" {
  const p = c.padding === undefined || c.padding === null ? "valid" : str(c.padding);
  if (p !== "same" && p !== "valid") {
    throw impossible(at, `has padding ${show(c.padding)}; a 2D layer takes 'same' or 'valid'`);
  }
  return p;
}

/** tfjs' `convOutputLength`. */
function convLength(n: number, k: number, pad: "same" | "valid", stride: number, dil = 1): number {
  const span = k + (k - 1) * (dil - 1);
  const out = pad === "same" ? n : n - span + 1;
  return Math.floor((out + stride - 1) / stride);
}

/** Whether a config's activation adds a tensor (anything but linear/none). */
function activates(c: JsonObject): boolean {
  const a = c.activation;
  if (a === undefined || a === null) return false;
  if (typeof a === "string") return camel(a) !== "linear";
  return true;
}

function useBias(c: JsonObject): boolean {
  return c.useBias === undefined || c.useBias === null ? true : c.useBias !== false;
}

function numel(s: SampleShape): number {
  return s.reduce((a, d) => a * d, 1);
}

function rank(at: At, s: SampleShape, r: number): void {
  if (s.length !== r) {
    throw impossible(
      at,
      `needs an input of rank ${r + 1} (batch included), got [null, ${s.join(", ")}]`,
    );
  }
}

/** Spatial dims and channel of a 4-D sample shape `[H, W, C]` or `[C, H, W]`. */
function hwc(s: SampleShape, first: boolean): [number, number, number] {
  return first ? [s[1], s[2], s[0]] : [s[0], s[1], s[2]];
}

function fromHwc(h: number, w: number, c: number, first: boolean): SampleShape {
  return first ? [c, h, w] : [h, w, c];
}

/** Output shape and tensor count of one leaf layer call. */
interface LeafResult {
  shapes: SampleShape[];
  /** Tensors of the output's size the call materialises. */
  tensors: number;
  /** Extra values per image (an intermediate of another size, e.g. SeparableConv2D's depthwise). */
  extraValues?: number;
}

function single(at: At, inputs: SampleShape[]): SampleShape {
  if (inputs.length !== 1) {
    throw impossible(at, `takes one input, got ${inputs.length}`);
  }
  return inputs[0];
}

function leaf(at: At, c: JsonObject, inputs: SampleShape[]): LeafResult {
  switch (at.className) {
    case "InputLayer":
      return { shapes: [single(at, inputs)], tensors: 0 };
    case "Conv2D":
    case "DepthwiseConv2D":
    case "SeparableConv2D": {
      const s = single(at, inputs);
      rank(at, s, 3);
      const first = channelsFirst(at, c);
      const [h, w, ch] = hwc(s, first);
      const k = intTuple(at, c.kernelSize, 2, "kernel_size");
      const st = intTuple(at, c.strides, 2, "strides", 1);
      // tfjs-layers 4.22's DepthwiseConv2D ignores its dilation_rate, in its shapes and its call.
      const dil = at.className === "DepthwiseConv2D"
        ? [1, 1]
        : intTuple(at, c.dilationRate, 2, "dilation_rate", 1);
      if (st.some((v) => v > 1) && dil.some((v) => v > 1)) {
        // tfjs-core asserts this only when the layer runs, with an error that is not a 4xx.
        throw impossible(
          at,
          `has strides ${st.join("×")} and dilation_rate ${dil.join("×")}; tfjs convolves with ` +
            "strides or with dilation, not both (one of them must be 1)",
        );
      }
      const pad = padding(at, c);
      const oh = convLength(h, k[0], pad, st[0], dil[0]);
      const ow = convLength(w, k[1], pad, st[1], dil[1]);
      if (oh < 1 || ow < 1) {
        throw impossible(
          at,
          `outputs ${oh}×${ow} spatially: its ${k[0]}×${k[1]} kernel (dilation ` +
            `${dil.join("×")}, padding '${pad}', strides ${st.join("×")}) does not fit its ` +
            `${h}×${w} input; every output dimension must be at least 1`,
          { outputRows: oh, outputCols: ow },
        );
      }
      let out: number;
      let extraValues = 0;
      if (at.className === "Conv2D") {
        out = positive(at, c.filters, "filters");
      } else {
        const dm = c.depthMultiplier === undefined || c.depthMultiplier === null
          ? 1
          : positive(at, c.depthMultiplier, "depth_multiplier");
        if (at.className === "DepthwiseConv2D") out = ch * dm;
        else {
          out = positive(at, c.filters, "filters");
          extraValues = oh * ow * ch * dm;
        }
      }
      const tensors = 1 + (useBias(c) ? 1 : 0) + (activates(c) ? 1 : 0);
      return { shapes: [fromHwc(oh, ow, out, first)], tensors, extraValues };
    }
    case "Dense": {
      const s = single(at, inputs);
      if (s.length < 1) throw impossible(at, "needs an input of rank 2 or more");
      const units = positive(at, c.units, "units");
      const tensors = 1 + (useBias(c) ? 1 : 0) + (activates(c) ? 1 : 0);
      return { shapes: [[...s.slice(0, -1), units]], tensors };
    }
    case "Flatten":
      return { shapes: [[numel(single(at, inputs))]], tensors: 1 };
    case "Reshape":
      return { shapes: [reshape(at, c.targetShape, single(at, inputs))], tensors: 1 };
    case "ZeroPadding2D": {
      const s = single(at, inputs);
      rank(at, s, 3);
      const first = channelsFirst(at, c);
      const [h, w, ch] = hwc(s, first);
      const p = pairs(at, c.padding, "padding", 1);
      return {
        shapes: [fromHwc(h + p[0][0] + p[0][1], w + p[1][0] + p[1][1], ch, first)],
        tensors: 1,
      };
    }
    case "Cropping2D": {
      const s = single(at, inputs);
      rank(at, s, 3);
      const first = channelsFirst(at, c);
      const [h, w, ch] = hwc(s, first);
      const p = pairs(at, c.cropping, "cropping", 0);
      const oh = h - p[0][0] - p[0][1], ow = w - p[1][0] - p[1][1];
      if (oh < 1 || ow < 1) {
        throw impossible(
          at,
          `crops its ${h}×${w} input to ${oh}×${ow}; at least 1×1 must remain`,
          { outputRows: oh, outputCols: ow },
        );
      }
      return { shapes: [fromHwc(oh, ow, ch, first)], tensors: 1 };
    }
    case "UpSampling2D": {
      const s = single(at, inputs);
      rank(at, s, 3);
      const first = channelsFirst(at, c);
      const [h, w, ch] = hwc(s, first);
      const size = intTuple(at, c.size, 2, "size", 2);
      return { shapes: [fromHwc(h * size[0], w * size[1], ch, first)], tensors: 1 };
    }
    case "MaxPooling2D":
    case "AveragePooling2D": {
      const s = single(at, inputs);
      rank(at, s, 3);
      const first = channelsFirst(at, c);
      const [h, w, ch] = hwc(s, first);
      const pool = intTuple(at, c.poolSize, 2, "pool_size", 2);
      const st = c.strides === undefined || c.strides === null
        ? pool
        : intTuple(at, c.strides, 2, "strides");
      const pad = padding(at, c);
      const oh = convLength(h, pool[0], pad, st[0]), ow = convLength(w, pool[1], pad, st[1]);
      if (oh < 1 || ow < 1) {
        throw impossible(
          at,
          `outputs ${oh}×${ow} spatially: its ${pool[0]}×${pool[1]} pool (padding '${pad}', ` +
            `strides ${st.join("×")}) does not fit its ${h}×${w} input; every output ` +
            "dimension must be at least 1",
          { outputRows: oh, outputCols: ow },
        );
      }
      return { shapes: [fromHwc(oh, ow, ch, first)], tensors: 1 };
    }
    case "GlobalAveragePooling2D":
    case "GlobalMaxPooling2D": {
      const s = single(at, inputs);
      rank(at, s, 3);
      const first = channelsFirst(at, c);
      return { shapes: [[hwc(s, first)[2]]], tensors: 1 };
    }
    case "BatchNormalization":
      numeric(at, c.epsilon, "epsilon", 0);
      numeric(at, c.momentum, "momentum");
      return { shapes: [single(at, inputs)], tensors: 2 };
    case "LayerNormalization":
      numeric(at, c.epsilon, "epsilon", 0);
      return { shapes: [single(at, inputs)], tensors: 4 };
    case "Dropout": {
      // Identity at inference; a mask and a product while training.
      const s = single(at, inputs);
      noiseShape(at, c.noiseShape, s);
      return { shapes: [s], tensors: 2 };
    }
    case "Rescaling": {
      const s = single(at, inputs);
      for (const key of ["scale", "offset"] as const) perChannel(at, c[key], key, s);
      return { shapes: [s], tensors: 2 };
    }
    case "ReLU": {
      const m = c.maxValue;
      if (m !== undefined && m !== null && !(typeof m === "number" && m > 0 && isFinite(m))) {
        throw impossible(
          at,
          `has max_value ${show(m)}; it must be a positive number (or null for no cap)`,
        );
      }
      return { shapes: [single(at, inputs)], tensors: 1 };
    }
    case "LeakyReLU": {
      const a = c.alpha;
      if (a !== undefined && a !== null && !(typeof a === "number" && isFinite(a))) {
        throw impossible(at, `has alpha ${show(a)}; it must be a number`);
      }
      return { shapes: [single(at, inputs)], tensors: 1 };
    }
    case "Activation":
    case "ELU":
    case "PReLU":
      return { shapes: [single(at, inputs)], tensors: 1 };
    case "Softmax": {
      const s = single(at, inputs);
      softmaxAxis(at, c.axis, s.length + 1);
      return { shapes: [s], tensors: 2 };
    }
    case "Add":
    case "Multiply":
    case "Average":
    case "Maximum":
      return { shapes: [broadcast(at, inputs)], tensors: Math.max(1, inputs.length - 1) };
    case "Concatenate":
      return { shapes: [concatenate(at, c, inputs)], tensors: 1 };
    default:
      // parseBundle refuses other classes before this pass runs; a caller that skipped it gets
      // the same answer rather than an unbounded layer.
      throw impossible(at, "is not a layer class whose output size can be bounded");
  }
}

/**
 * tfjs applies these options only when the layer runs, where a bad value is a plain error (a 500)
 * rather than a refusal: they are checked here instead.
 */
function softmaxAxis(at: At, axis: unknown, r: number): void {
  // tfjs' Softmax layer defaults to axis 1 (Keras writes -1): the last axis only for flat input.
  const axes = axis === undefined || axis === null ? [1] : Array.isArray(axis) ? axis : [axis];
  const valid = axes.length > 0 && axes.every((a) => Number.isInteger(a) && a >= -r && a < r);
  // One axis goes to tf.softmax, which only normalises over the last one.
  const last = axes.length > 1 || axes[0] === -1 || axes[0] === r - 1;
  if (!valid || !last) {
    throw impossible(
      at,
      `normalises over axis ${show(axis ?? 1)} of a rank-${r} input; tfjs' softmax takes ` +
        `the last axis (-1 or ${r - 1}; tfjs' default is 1) or a list of several axes`,
    );
  }
}

/** An optional number option, at least `min` when given, that tfjs only reads when it runs. */
function numeric(at: At, v: unknown, what: string, min = -Infinity): void {
  if (v === undefined || v === null || (typeof v === "number" && isFinite(v) && v >= min)) return;
  throw impossible(
    at,
    `has ${what} ${show(v)}; it must be a number${min > -Infinity ? ` >= ${min}` : ""}`,
  );
}

/** A Rescaling `scale`/`offset`: a number, or one number per channel (or a single one). */
function perChannel(at: At, v: unknown, what: string, s: SampleShape): void {
  if (v === undefined || v === null || (typeof v === "number" && isFinite(v))) return;
  const channels = s[s.length - 1];
  const ok = Array.isArray(v) && (v.length === 1 || v.length === channels) &&
    v.every((x) => typeof x === "number" && isFinite(x));
  if (!ok) {
    throw impossible(
      at,
      `has ${what} ${show(v)}; it must be a number or a list of 1 or ${channels} numbers (one ` +
        "per channel)",
    );
  }
}

/** A Dropout `noise_shape`: the input's rank, each entry null, 1 or that dimension. */
function noiseShape(at: At, v: unknown, s: SampleShape): void {
  if (v === undefined || v === null) return;
  const full = [null, ...s];
  const ok = Array.isArray(v) && v.length === full.length &&
    v.every((d, i) => d === null || d === 1 || (i > 0 && d === full[i]));
  if (!ok) {
    throw impossible(
      at,
      `has noise_shape ${show(v)} for inputs [${full.map((d) => d ?? "null").join(", ")}]; ` +
        "each entry must be null, 1 or the input's dimension",
    );
  }
}

function positive(at: At, v: unknown, what: string): number {
  if (!isPositiveInt(v)) {
    throw impossible(at, `has ${what} ${show(v)}; it must be a positive integer`);
  }
  return v;
}

/** tfjs' `fixUnknownDimension`: one unknown (null or negative) dimension is inferred. */
function reshape(at: At, target: unknown, input: SampleShape): SampleShape {
  if (!Array.isArray(target) || target.length === 0) {
    throw impossible(at, `has target_shape ${show(target)}; it must be a non-empty list`);
  }
  let unknown = -1, known = 1;
  const out: number[] = [];
  for (let i = 0; i < target.length; i++) {
    const d = target[i];
    if (d === null || (typeof d === "number" && d < 0)) {
      if (unknown >= 0) throw impossible(at, "has more than one unknown target dimension");
      unknown = i;
      out.push(0);
    } else if (isPositiveInt(d)) {
      known *= d;
      out.push(d);
    } else {
      throw impossible(
        at,
        `has target_shape ${show(target)}; dimensions must be positive integers`,
      );
    }
  }
  const size = numel(input);
  if (unknown >= 0) {
    if (size % known !== 0) {
      throw impossible(
        at,
        `cannot reshape ${size} values per image into ${show(target)}`,
      );
    }
    out[unknown] = size / known;
  } else if (known !== size) {
    throw impossible(
      at,
      `reshapes [${input.join(", ")}] (${size} values per image) to [${out.join(", ")}] ` +
        `(${known}); the size must not change`,
    );
  }
  return out;
}

/** tfjs' elementwise merge shape: trailing dimensions broadcast, 1 stretches. */
function broadcast(at: At, inputs: SampleShape[]): SampleShape {
  if (inputs.length < 2) {
    throw impossible(at, `merges ${inputs.length} input(s); it needs 2 or more`);
  }
  let out = inputs[0];
  for (const s of inputs.slice(1)) {
    const [a, b] = out.length >= s.length ? [out, s] : [s, out];
    const next = a.slice(0, a.length - b.length);
    for (let k = 0; k < b.length; k++) {
      const i = a[a.length - b.length + k], j = b[k];
      if (i !== j && i !== 1 && j !== 1) {
        throw impossible(
          at,
          `cannot broadcast [${inputs.map((x) => `[${x.join(", ")}]`).join(", ")}] together`,
        );
      }
      next.push(i === 1 ? j : i);
    }
    out = next;
  }
  return out;
}

function concatenate(at: At, c: JsonObject, inputs: SampleShape[]): SampleShape {
  if (inputs.length < 2) {
    throw impossible(at, `concatenates ${inputs.length} input(s); it needs 2 or more`);
  }
  const axisRaw = c.axis === undefined || c.axis === null ? -1 : c.axis;
  const r = inputs[0].length + 1; // with the batch dimension
  if (!Number.isInteger(axisRaw) || (axisRaw as number) >= r || (axisRaw as number) < -r) {
    throw impossible(at, `has axis ${show(c.axis)} for inputs of rank ${r}`);
  }
  const axis = (axisRaw as number) < 0 ? r + (axisRaw as number) : (axisRaw as number);
  if (axis === 0) throw impossible(at, "concatenates along the batch axis");
  const i = axis - 1;
  const out = inputs[0].slice();
  for (const s of inputs.slice(1)) {
    const fits = s.length === out.length && s.every((d, k) => k === i || d === out[k]);
    if (!fits) {
      throw impossible(
        at,
        `cannot concatenate [${inputs.map((x) => `[${x.join(", ")}]`).join(", ")}] along ` +
          `axis ${axis}`,
      );
    }
    out[i] += s[i];
  }
  return out;
}

// --- the pass ----------------------------------------------------------------------------------

interface Walk {
  layers: LayerActivation[];
  largestTensorValues: number;
}

function record(walk: Walk, at: At, r: LeafResult): void {
  const values = r.shapes.reduce((n, s) => n + numel(s), 0);
  for (const s of r.shapes) {
    if (s.some((d) => !(Number.isInteger(d) && d >= 1))) {
      throw impossible(
        at,
        `outputs [null, ${s.join(", ")}]; every dimension must be a positive integer`,
      );
    }
    walk.largestTensorValues = Math.max(walk.largestTensorValues, numel(s));
  }
  if (r.extraValues) walk.largestTensorValues = Math.max(walk.largestTensorValues, r.extraValues);
  const bytesPerSample = (r.tensors * values + (r.extraValues ?? 0)) * BYTES_PER_VALUE;
  walk.layers.push({
    path: at.path,
    className: at.className,
    outputShapes: r.shapes,
    bytesPerSample,
  });
}

/** The declared `[H, W, C]` of an input-carrying config (`batch_input_shape` or `input_shape`). */
function declaredShape(c: JsonObject): unknown[] | undefined {
  if (Array.isArray(c.batchInputShape)) return c.batchInputShape.slice(1);
  if (Array.isArray(c.inputShape)) return c.inputShape;
  if (Array.isArray(c.batchShape)) return c.batchShape.slice(1);
  return undefined;
}

/**
 * The input shape a layer declares; a nested model declares it through its own first layer
 * (Sequential) or its first input layer (Functional), as tfjs' `Sequential.add` reads it.
 */
function declaredInput(layer: JsonObject, depth = 0): unknown[] | undefined {
  const own = declaredShape(tsConfig(layer));
  if (own !== undefined || depth > MAX_JSON_DEPTH) return own;
  if (typeof layer.class_name !== "string" || !CONTAINER_LAYERS.has(layer.class_name)) return;
  const layers = layersOf(layer);
  if (layer.class_name === "Sequential") {
    return isJsonObject(layers[0]) ? declaredInput(layers[0], depth + 1) : undefined;
  }
  const config = isJsonObject(layer.config) ? layer.config : {};
  const first = Array.isArray(config.input_layers) ? refOf(config.input_layers[0]) : undefined;
  const input = first &&
    layers.find((l, i) => isJsonObject(l) && layerName(l, i) === first.name) as
      | JsonObject
      | undefined;
  return input ? declaredShape(tsConfig(input)) : undefined;
}

function fixedShape(at: At, shape: unknown[]): SampleShape {
  if (shape.length === 0 || !shape.every(isPositiveInt)) {
    throw impossible(
      at,
      `declares the input shape [null, ${shape.map((d) => show(d)).join(", ")}]; every ` +
        "dimension but the batch must be a positive integer",
    );
  }
  return shape as number[];
}

/** Applies one layer (leaf or nested model) to `inputs`; returns its output shapes. */
function apply(
  walk: Walk,
  layer: JsonObject,
  path: string,
  inputs: SampleShape[],
  depth: number,
): SampleShape[] {
  const className = typeof layer.class_name === "string"
    ? layer.class_name
    : String(layer.class_name);
  const at = { path, className };
  if (CONTAINER_LAYERS.has(className)) return runContainer(walk, layer, path, inputs, depth + 1);
  const r = leaf(at, tsConfig(layer), inputs);
  record(walk, at, r);
  return r.shapes;
}

function checkUniqueNames(layers: unknown[], where: string): void {
  const seen = new Map<string, number>();
  layers.forEach((l, i) => {
    if (!isJsonObject(l)) return;
    const c = isJsonObject(l.config) ? l.config : {};
    const name = typeof c.name === "string" && c.name !== ""
      ? c.name
      : typeof l.name === "string" && l.name !== ""
      ? l.name
      : undefined;
    if (name === undefined) return;
    const prev = seen.get(name);
    if (prev !== undefined) {
      throw new UnsupportedModelError(
        `${where}.layers[${prev}] and ${where}.layers[${i}] are both named '${name}'; the ` +
          "layers of a model must have unique names",
        { layer: name },
      );
    }
    seen.set(name, i);
  });
}

/**
 * Runs a Sequential or Functional container on `inputs` (undefined at the top level: its
 * declared input shapes are used).
 */
function runContainer(
  walk: Walk,
  container: JsonObject,
  path: string,
  inputs: SampleShape[] | undefined,
  depth: number,
): SampleShape[] {
  const at = { path: path || "model", className: String(container.class_name) };
  if (depth > MAX_JSON_DEPTH) throw impossible(at, "nests models too deeply");
  const layers = layersOf(container);
  checkUniqueNames(layers, path ? `layer '${path}'` : "modelTopology");
  const prefix = path ? `${path}/` : "";
  if (container.class_name === "Sequential") {
    let x = inputs;
    layers.forEach((l, i) => {
      if (!isJsonObject(l)) return;
      const name = `${prefix}${layerName(l, i)}`;
      if (x === undefined) {
        // The first layer carries the input shape (or is an InputLayer).
        const declared = declaredInput(l);
        if (declared === undefined) {
          throw impossible(
            { path: name, className: String(l.class_name) },
            "is the first layer and declares no input shape (batch_input_shape); the model " +
              "must declare its [H, W, C]",
          );
        }
        x = [fixedShape({ path: name, className: String(l.class_name) }, declared)];
        if (l.class_name === "InputLayer") return;
      }
      x = apply(walk, l, name, x, depth);
    });
    if (x === undefined) throw impossible(at, "has no layers");
    return x;
  }
  return runFunctional(walk, container, layers, prefix, at, inputs, depth);
}

function refOf(v: unknown): { name: string; node: number; tensor: number } | undefined {
  if (!Array.isArray(v) || typeof v[0] !== "string") return undefined;
  const node = typeof v[1] === "number" ? v[1] : 0;
  const tensor = typeof v[2] === "number" ? v[2] : 0;
  return { name: v[0], node, tensor };
}

function runFunctional(
  walk: Walk,
  container: JsonObject,
  layers: unknown[],
  prefix: string,
  at: At,
  inputs: SampleShape[] | undefined,
  depth: number,
): SampleShape[] {
  const config = isJsonObject(container.config) ? container.config : {};
  // tfjs resolves inbound nodes by each layer's outer `name` (the last layer of a name wins).
  const byName = new Map<string, { layer: JsonObject; index: number }>();
  layers.forEach((l, i) => {
    if (!isJsonObject(l)) return;
    byName.set(typeof l.name === "string" ? l.name : layerName(l, i), { layer: l, index: i });
  });
  // Output shapes by `name#node`. Input layers and nested models own node 0; calls of a plain
  // layer start at 0, of a nested model at 1 (tfjs makes node 0 when it builds the model).
  const produced = new Map<string, SampleShape[]>();
  const inputRefs = Array.isArray(config.input_layers) ? config.input_layers : [];
  inputRefs.forEach((ref, k) => {
    const r = refOf(ref);
    const entry = r && byName.get(r.name);
    if (!r || !entry) throw impossible(at, `names an unknown input layer ${show(ref)}`);
    const declared = declaredShape(tsConfig(entry.layer));
    let shape: SampleShape;
    if (inputs !== undefined) {
      if (inputs[k] === undefined) {
        throw impossible(
          at,
          `is called with ${inputs.length} input(s) but has ${inputRefs.length}`,
        );
      }
      shape = inputs[k];
    } else if (declared !== undefined) {
      shape = fixedShape({ path: `${prefix}${r.name}`, className: "InputLayer" }, declared);
    } else {
      throw impossible(at, `input '${r.name}' declares no shape`);
    }
    produced.set(`${r.name}#0`, [shape]);
  });
  // Every layer call (layer_graph.ts has already refused graphs whose calls can never all run).
  const pending: { name: string; layer: JsonObject; node: number; refs: unknown[] }[] = [];
  for (const [name, { layer }] of byName) {
    if (layer.class_name === "InputLayer") continue;
    const inbound = inboundNodes(layer);
    if (!Array.isArray(inbound)) continue;
    const base = typeof layer.class_name === "string" && CONTAINER_LAYERS.has(layer.class_name)
      ? 1
      : 0;
    inbound.forEach((node, j) => {
      if (Array.isArray(node) && node.length > 0) {
        pending.push({ name, layer, node: base + j, refs: node });
      }
    });
  }
  // Each call runs once every key it reads exists (Kahn's order: linear in the calls, however
  // the layers are listed).
  const keyOf = (ref: unknown) => {
    const r = refOf(ref);
    return r && `${r.name}#${r.node}`;
  };
  const waiting = new Map<string, number[]>();
  const missing = pending.map((call, i) => {
    const keys = new Set<string>();
    for (const ref of call.refs) {
      const k = keyOf(ref);
      // An entry that names no layer never resolves (layer_graph.ts refuses such graphs first).
      keys.add(k ?? "\u0000unresolvable");
    }
    let n = 0;
    for (const k of keys) {
      if (produced.has(k)) continue;
      n++;
      const list = waiting.get(k);
      if (list) list.push(i);
      else waiting.set(k, [i]);
    }
    return n;
  });
  const ready = missing.flatMap((n, i) => (n === 0 ? [i] : []));
  let done = 0;
  while (ready.length > 0) {
    const call = pending[ready.pop()!];
    done++;
    const shapes = call.refs.map((ref) => {
      const r = refOf(ref)!;
      const out = produced.get(`${r.name}#${r.node}`)!;
      if (out[r.tensor] === undefined) {
        throw impossible(
          { path: `${prefix}${call.name}`, className: String(call.layer.class_name) },
          `reads output ${r.tensor} of '${r.name}', which has ${out.length}`,
        );
      }
      return out[r.tensor];
    });
    const key = `${call.name}#${call.node}`;
    produced.set(key, apply(walk, call.layer, `${prefix}${call.name}`, shapes, depth));
    for (const j of waiting.get(key) ?? []) if (--missing[j] === 0) ready.push(j);
    waiting.delete(key);
  }
  if (done < pending.length) {
    throw impossible(at, "has layer calls whose inputs are never produced");
  }
  const outs: SampleShape[] = [];
  const outputRefs = Array.isArray(config.output_layers) ? config.output_layers : [];
  for (const ref of outputRefs) {
    const r = refOf(ref);
    const out = r && produced.get(`${r.name}#${r.node}`);
    if (!r || !out || out[r.tensor] === undefined) {
      throw impossible(at, `names an output ${show(ref)} that no layer call produces`);
    }
    outs.push(out[r.tensor]);
  }
  if (outs.length === 0) throw impossible(at, "has no outputs");
  return outs;
}

/**
 * The static pass: every layer call's output shape and activation bytes per image, for a
 * validated topology (`parseBundle` has already checked its classes, names and graph).
 *
 * @throws {UnsupportedModelError} (422, naming the layer) a zero, negative or non-integer
 *   dimension, a zero or non-integer stride, dilation, kernel, pool or upsampling size, a
 *   negative padding or cropping, a reshape that changes the size, merge inputs that do not
 *   broadcast or concatenate, duplicate layer names within a model, or an undeclared input shape.
 */
export function planActivations(topology: JsonObject): ActivationPlan {
  const walk: Walk = { layers: [], largestTensorValues: 0 };
  const inputs: SampleShape[] = [];
  // The input shape, for the report: the first layer that declares one.
  const first = layersOf(topology).find((l) => isJsonObject(l) && declaredInput(l));
  if (first) inputs.push(declaredInput(first as JsonObject) as number[]);
  runContainer(walk, topology, "", undefined, 0);
  const inputShape = inputs[0] ?? [];
  const inputValues = inputShape.every(isPositiveInt) ? numel(inputShape) : 0;
  walk.largestTensorValues = Math.max(walk.largestTensorValues, inputValues);
  let bytes = INPUT_TENSORS * inputValues * BYTES_PER_VALUE;
  let largest: LayerActivation | undefined;
  for (const l of walk.layers) {
    bytes += l.bytesPerSample;
    if (largest === undefined || l.bytesPerSample > largest.bytesPerSample) largest = l;
  }
  return {
    inputShape,
    layers: walk.layers,
    bytesPerSample: bytes,
    largestTensorValues: walk.largestTensorValues,
    largest,
  };
}

/** Activation bytes of one forward (and, with `use.backward`, backward) pass of `use.batch`. */
export function activationBytes(
  plan: Pick<ActivationPlan, "bytesPerSample">,
  use: ActivationUse,
): number {
  return plan.bytesPerSample * use.batch * (use.backward ? GRADIENT_FACTOR : 1);
}

function mib(bytes: number): string {
  const m = bytes / 2 ** 20;
  return m >= 10 ? `${Math.round(m)} MiB` : `${m.toPrecision(2)} MiB`;
}

/** The budget a plan must respect, in the form the loader carries to the engine. */
export function budgetOf(
  plan: ActivationPlan,
  maxBytes: number,
  backward: boolean,
): ActivationBudget {
  return {
    bytesPerSample: plan.bytesPerSample,
    largestTensorValues: plan.largestTensorValues,
    largest: plan.largest && { path: plan.largest.path, className: plan.largest.className },
    maxBytes,
    backward,
  };
}

/** The largest batch whose activations fit `budget` (0 when not even one image fits). */
export function maxBatchFor(budget: ActivationBudget): number {
  const per = budget.bytesPerSample * (budget.backward ? GRADIENT_FACTOR : 1);
  const byBytes = per > 0 ? Math.floor(budget.maxBytes / per) : Infinity;
  const byValues = budget.largestTensorValues > 0
    ? Math.floor(MAX_TENSOR_VALUES / budget.largestTensorValues)
    : Infinity;
  return Math.min(byBytes, byValues);
}

/**
 * Refuses a batch whose activations exceed the budget, before any tensor exists.
 *
 * @throws {LimitExceededError} (413) naming the costliest layer, what the batch needs, the
 *   budget and the largest batch that fits.
 */
export function checkActivationBudget(budget: ActivationBudget, batch: number): void {
  const need = activationBytes(budget, { batch, backward: budget.backward });
  const values = budget.largestTensorValues * batch;
  if (need <= budget.maxBytes && values <= MAX_TENSOR_VALUES) return;
  const fits = maxBatchFor(budget);
  const where = budget.largest
    ? ` (the costliest layer is '${budget.largest.path}' (${budget.largest.className}))`
    : "";
  const what = values > MAX_TENSOR_VALUES
    ? `a tensor of ${values} values, more than the ${MAX_TENSOR_VALUES} tfjs can index`
    : `about ${mib(need)} of activations${budget.backward ? " and gradients" : ""}`;
  throw new LimitExceededError(
    `a batch of ${batch} image(s) through this model needs ${what}${where}; at most ` +
      `${mib(budget.maxBytes)} (MAX_ACTIVATION_BYTES) are allowed. ` +
      (fits >= 1
        ? `A batch of at most ${fits} fits: lower batch_size.`
        : "Not even one image fits: the model's layers are too large for this service."),
    {
      limit: "maxActivationBytes",
      maxActivationBytes: budget.maxBytes,
      neededBytes: need,
      batch,
      maxBatch: fits,
      layer: budget.largest?.path,
    },
  );
}

/** Tensors of its output's size one call of `className` materialises (see the module doc). */
export function tensorsPerCall(className: string, config: JsonObject): number {
  switch (className) {
    case "Conv2D":
    case "DepthwiseConv2D":
    case "SeparableConv2D":
    case "Dense":
      return 1 + (useBias(config) ? 1 : 0) + (activates(config) ? 1 : 0);
    case "InputLayer":
      return 0;
    case "LayerNormalization":
      return 4;
    case "BatchNormalization":
    case "Dropout":
    case "Rescaling":
    case "Softmax":
      return 2;
    default:
      return 1;
  }
}

/**
 * Forward bytes per image of layer calls from the output shapes tfjs itself computed (batch
 * included, as tfjs writes them): the loader's second opinion, see `load_classifier.ts`.
 *
 * @throws {UnsupportedModelError} (422, naming the layer) a dimension below 1 or not an integer.
 */
export function perSampleBytesOfShapes(
  calls: { path: string; className: string; config: JsonObject; shapes: (number | null)[][] }[],
  inputShape: SampleShape,
): { bytesPerSample: number; largestTensorValues: number } {
  let values = INPUT_TENSORS * numel(inputShape);
  let largest = numel(inputShape);
  for (const call of calls) {
    const k = tensorsPerCall(call.className, call.config);
    for (const shape of call.shapes) {
      const s = shape.slice(1);
      // tfjs leaves some dimensions unknown (a Reshape's inferred one): the static pass's count
      // stands for those.
      if (s.some((d) => d === null || d === undefined)) continue;
      if (s.some((d) => !(typeof d === "number" && Number.isInteger(d) && d >= 1))) {
        throw impossible(
          call,
          `outputs [${shape.map((d) => d === null ? "null" : d).join(", ")}]; every dimension ` +
            "must be a positive integer",
        );
      }
      const n = numel(s as number[]);
      largest = Math.max(largest, n);
      values += k * n;
    }
  }
  return { bytesPerSample: values * BYTES_PER_VALUE, largestTensorValues: largest };
}

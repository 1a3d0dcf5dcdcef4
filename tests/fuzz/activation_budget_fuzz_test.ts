import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../_helpers.ts";
import { HttpError } from "../../src/errors.ts";
import { planActivations } from "../../src/io/activation_budget.ts";
import { jsonDepth, parseJsonText } from "../../src/io/json_guard.ts";
import { Outcomes, params } from "./_fuzz.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const small = (min: number, max: number) => fc.integer({ min, max });
/** Mostly legal values, sometimes the zero that made wasm trap. */
const size = (max: number) =>
  fc.oneof({ weight: 6, arbitrary: small(1, max) }, { weight: 1, arbitrary: fc.constant(0) });
const pair = (max: number) => fc.oneof(size(max), fc.tuple(size(max), size(max)));
/** Strides or dilation: mostly 1, as real models have. */
const step = (max: number) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: pair(max) });
const pad = fc.constantFrom("same", "valid");

/** One random spatial layer config, as a Keras-style JSON layer. */
const spatialLayer: fc.Arbitrary<[string, Json]> = fc.oneof(
  fc.record({
    filters: small(1, 3),
    kernel_size: pair(6),
    strides: pair(3),
    dilation_rate: pair(3),
    padding: pad,
  })
    .map((c) => ["Conv2D", { ...c, activation: "relu" }] as [string, Json]),
  fc.record({ kernel_size: pair(5), strides: step(3), depth_multiplier: small(1, 2), padding: pad })
    .map((c) => ["DepthwiseConv2D", c] as [string, Json]),
  fc.record({
    filters: small(1, 3),
    kernel_size: pair(4),
    strides: pair(2),
    dilation_rate: pair(2),
    padding: pad,
  })
    .map((c) => ["SeparableConv2D", c] as [string, Json]),
  fc.record({ pool_size: pair(5), strides: fc.option(pair(3), { nil: null }), padding: pad })
    .map((c) => ["MaxPooling2D", c] as [string, Json]),
  fc.record({ pool_size: pair(5), padding: pad }).map((c) =>
    ["AveragePooling2D", c] as [string, Json]
  ),
  fc.record({ size: fc.tuple(size(3), size(3)) }).map((c) => ["UpSampling2D", c] as [string, Json]),
  fc.record({ padding: fc.oneof(small(0, 2), fc.tuple(small(0, 2), small(0, 2))) })
    .map((c) => ["ZeroPadding2D", c] as [string, Json]),
  fc.record({ cropping: fc.oneof(small(0, 3), fc.tuple(small(0, 3), small(0, 3))) })
    .map((c) => ["Cropping2D", c] as [string, Json]),
  fc.constant(["BatchNormalization", {}] as [string, Json]),
  // Options tfjs reads only when the layer runs (a bad one was a plain error, a 500).
  fc.record({ axis: fc.constantFrom(undefined, -1, 1, 2, 3, 4, [3], [1], [1, 2], 9) })
    .map((c) => ["Softmax", c] as [string, Json]),
  fc.record({ max_value: fc.constantFrom(undefined, null, 6, 0.5, 0, -1) })
    .map((c) => ["ReLU", c] as [string, Json]),
  fc.record({
    noise_shape: fc.constantFrom(undefined, null, [null, 1, 1, null], [1, 2, 3], [7, 1, 1, 1]),
  })
    .map((c) => ["Dropout", { rate: 0.5, ...c }] as [string, Json]),
  fc.record({ scale: fc.constantFrom(0.5, [2], [1, 2, 3], [1, 2], "x") })
    .map((c) => ["Rescaling", { offset: 0, ...c }] as [string, Json]),
);

const modelArb = fc.record({
  h: small(1, 16),
  w: small(1, 16),
  c: small(1, 3),
  layers: fc.array(spatialLayer, { minLength: 1, maxLength: 4 }),
});

function topology(m: { h: number; w: number; c: number; layers: [string, Json][] }): Json {
  const layers = [...m.layers, ["GlobalAveragePooling2D", {}], ["Dense", { units: 2 }]] as [
    string,
    Json,
  ][];
  // Through JSON, as a bundle arrives (no undefined values).
  return JSON.parse(JSON.stringify({
    class_name: "Sequential",
    config: {
      name: "fuzzed",
      layers: layers.map(([class_name, config], i) => ({
        class_name,
        config: {
          name: `l${i}`,
          ...config,
          ...(i === 0 ? { batch_input_shape: [null, m.h, m.w, m.c] } : {}),
        },
      })),
    },
  }));
}

function tuple(v: unknown): number[] {
  return typeof v === "number" ? [v, v] : Array.isArray(v) ? v as number[] : [];
}

/**
 * A zero stride, kernel, pool or upsampling size, strides > 1 with dilation > 1, or an option tfjs
 * only fails on when the layer runs (a softmax off the last axis, a ReLU cap <= 0, a noise shape
 * or per-channel scale that does not fit).
 */
function declaresZeroOrConflict(layers: [string, Json][]): boolean {
  return layers.some(([cls, c]) => {
    if (["Softmax", "ReLU", "Dropout", "Rescaling"].includes(cls)) return true;
    const values = ["kernel_size", "strides", "dilation_rate", "pool_size", "size"]
      .flatMap((k) => tuple(c[k]));
    if (values.includes(0)) return true;
    const st = tuple(c.strides), dil = cls === "DepthwiseConv2D" ? [] : tuple(c.dilation_rate);
    return st.some((v) => v > 1) && dil.some((v) => v > 1);
  });
}

/** Whether tfjs-layers itself accepts the config at all (some zeros it refuses on its own). */
async function tfjsBuild(t: Json): Promise<tf.LayersModel | undefined> {
  try {
    return await tf.models.modelFromJSON({ modelTopology: t });
  } catch {
    return undefined;
  }
}

Deno.test("the static pass on random conv/pool/pad/crop/upsample stacks: refused with a 4xx, or tfjs runs it to exactly the planned shapes", async () => {
  await setupBackend();
  const seen = new Outcomes("activation plan");
  await fc.assert(
    fc.asyncProperty(modelArb, async (m) => {
      const t = topology(m);
      let plan;
      try {
        plan = planActivations(t);
      } catch (e) {
        assert.ok(e instanceof HttpError && e.status === 422, `not a 422: ${e}`);
        seen.add(422);
        // Never stricter than it must be: a refused stack has a zero size, a strides-and-
        // dilation conflict, or a shape tfjs itself computes as empty (or cannot build at all).
        if (declaresZeroOrConflict(m.layers)) return;
        const model = await tfjsBuild(t);
        if (model === undefined) return;
        const dims = model.layers.flatMap((l) => {
          const shape = l.outputShape as (number | null)[] | undefined;
          return Array.isArray(shape) ? shape.slice(1) : [NaN];
        });
        model.dispose();
        assert.ok(
          dims.some((d) => !(typeof d === "number" && d >= 1)),
          `refused a model tfjs builds with positive shapes: ${(e as Error).message}`,
        );
        return;
      }
      seen.add("ok");
      const model = await tfjsBuild(t);
      assert.ok(model, `the pass accepted a model tfjs cannot build: ${JSON.stringify(m)}`);
      try {
        // Symbolic shapes agree, layer by layer.
        model.layers.forEach((layer, i) => {
          const want = layer.outputShape as (number | null)[];
          assert.deepEqual([null, ...plan.layers[i].outputShapes[0]], want, `layer ${i}`);
        });
        // And the real forward pass (where a zero-size tensor made wasm trap) gives them too.
        const x = tf.zeros([2, m.h, m.w, m.c]);
        const y = model.predict(x) as tf.Tensor;
        assert.deepEqual(y.shape, [2, 2]);
        // And in training mode (dropout masks, batch statistics), with a gradient, where the
        // backend has the kernels for one (the loader refuses the rest, see load_classifier.ts).
        const depthwise = m.layers.some(([cls]) => cls.includes("Conv2D") && cls !== "Conv2D");
        // tfjs has no gradient for dilated convolutions on any backend (the loader refuses it).
        const dilated = m.layers.some(([cls, c]) =>
          (cls === "Conv2D" || cls === "SeparableConv2D") &&
          tuple(c.dilation_rate).some((d) => d > 1)
        );
        const canGrad = !dilated && (!depthwise ||
          tf.getKernel("DepthwiseConv2dNativeBackpropInput", tf.getBackend()) !== undefined);
        if (canGrad) {
          const f = (v: tf.Tensor) => (model.apply(v, { training: true }) as tf.Tensor).sum();
          const g = tf.grad(f)(x);
          assert.deepEqual(g.shape, x.shape);
          g.dispose();
        }
        tf.dispose([x, y]);
      } finally {
        model.dispose();
      }
    }),
    params(60),
  );
  seen.report();
});

Deno.test("a JSON document's depth is measured on its text: strings, escapes and nesting", () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 8 }), (v) => {
      const text = JSON.stringify(v);
      // The depth of the parsed value, computed the slow way.
      const depth = (x: unknown): number =>
        typeof x === "object" && x !== null
          ? 1 + Math.max(0, ...Object.values(x as Record<string, unknown>).map(depth))
          : 0;
      assert.equal(jsonDepth(text).depth, depth(v));
    }),
    params(300),
  );
  assert.equal(jsonDepth(JSON.stringify({ a: '[[[{{\\"]]' })).depth, 1);
  assert.throws(() => parseJsonText("[".repeat(65) + "]".repeat(65), "x"), /deeper than 64/);
  assert.deepEqual(parseJsonText("[".repeat(64) + "]".repeat(64), "x") !== undefined, true);
  // Unbalanced text is still refused by depth first when it runs deep, by JSON.parse otherwise.
  assert.throws(() => parseJsonText("[".repeat(100_000), "x"), /deeper than 64/);
  assert.throws(() => parseJsonText("]]]", "x"), /not valid JSON/);
});

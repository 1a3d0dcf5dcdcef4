import assert from "node:assert/strict";
import {
  HttpError,
  LimitExceededError,
  MalformedInputError,
  UnsupportedModelError,
} from "../../src/errors.ts";
import {
  type BundleFile,
  type BundleLimits,
  linearizeOutput,
  parseBundle,
  restoreOutputActivation,
} from "../../src/io/model_bundle.ts";

const FIXTURE = new URL("../fixtures/tiny_cnn/", import.meta.url);
const LIMITS: BundleLimits = {
  maxModelJsonBytes: 1 << 20,
  maxWeightBytes: 1 << 20,
  maxParams: 100_000,
  maxLayers: 100,
};

// deno-lint-ignore no-explicit-any
type Json = any;

const tinyJson = await Deno.readFile(new URL("model.json", FIXTURE));
const tinyWeights = await Deno.readFile(new URL("weights.bin", FIXTURE));
const residualJson = await Deno.readFile(new URL("residual/model.json", FIXTURE));
const residualShards: BundleFile[] = await Promise.all(
  ["group1-shard1of2.bin", "group1-shard2of2.bin"].map(async (name) => ({
    name,
    bytes: await Deno.readFile(new URL(`residual/${name}`, FIXTURE)),
  })),
);

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const tiny = (): Json => JSON.parse(new TextDecoder().decode(tinyJson));
const shard = (bytes: Uint8Array = tinyWeights, name = "weights.bin"): BundleFile[] => [
  { name, bytes },
];
/** The tiny model's JSON after `edit`, with its own shard. */
function edited(edit: (j: Json) => void): [Uint8Array, BundleFile[]] {
  const j = tiny();
  edit(j);
  return [enc(j), shard()];
}
/** A copy of the tiny model's weights with float `index` overwritten. */
function weightsWith(index: number, value: number): Uint8Array {
  const copy = tinyWeights.slice();
  new DataView(copy.buffer).setFloat32(index * 4, value, true);
  return copy;
}

function rejects(
  fn: () => unknown,
  cls: new (...args: never[]) => HttpError,
  status: number,
  pattern?: RegExp,
): HttpError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err}`);
    assert.equal(err.status, status);
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected ${cls.name}, nothing was thrown`);
}

Deno.test("parseBundle() returns float32 specs, one weight buffer and a linear output for the fixture", () => {
  const a = parseBundle(tinyJson, shard(), LIMITS);
  assert.equal(a.format, "layers-model");
  assert.deepEqual(a.weightSpecs!.map((s) => s.name), [
    "conv/kernel",
    "conv/bias",
    "dense/kernel",
    "dense/bias",
  ]);
  assert.ok(a.weightData instanceof ArrayBuffer);
  assert.deepEqual(new Uint8Array(a.weightData), tinyWeights);
  assert.equal(a.originalOutputActivation, "softmax");
  const layers = (a.modelTopology as Json).config.layers;
  assert.equal(layers[layers.length - 1].config.activation, "linear");
});

Deno.test("parseBundle() joins a group's shards in manifest order and linearizes a Softmax layer", () => {
  const a = parseBundle(residualJson, [...residualShards].reverse(), LIMITS);
  const joined = new Uint8Array([...residualShards[0].bytes, ...residualShards[1].bytes]);
  assert.deepEqual(new Uint8Array(a.weightData as ArrayBuffer), joined);
  assert.equal(a.originalOutputActivation, "softmax");
  const last = (a.modelTopology as Json).config.layers.at(-1);
  assert.equal(last.class_name, "Activation");
  assert.equal(last.config.activation, "linear");
  assert.equal(last.name, "softmax");
});

Deno.test("parseBundle() matches shards by basename on both sides", () => {
  const [json] = edited((j) => (j.weightsManifest[0].paths = ["./models/v1/weights.bin"]));
  const a = parseBundle(json, shard(tinyWeights, "C:\\uploads\\weights.bin"), LIMITS);
  assert.equal((a.weightData as ArrayBuffer).byteLength, tinyWeights.byteLength);
});

Deno.test("parseBundle() unwraps Keras' model_config and drops training_config", () => {
  const [json, shards] = edited((j) => {
    j.modelTopology = { model_config: j.modelTopology, training_config: { loss: "mse" } };
  });
  const a = parseBundle(json, shards, LIMITS);
  assert.equal((a.modelTopology as Json).class_name, "Sequential");
  assert.equal(a.trainingConfig, undefined);
});

Deno.test("parseBundle() dequantizes uint8 and float16 weights to float32", () => {
  const j = tiny();
  const specs = j.weightsManifest[0].weights;
  // conv/kernel as uint8 (54 values), conv/bias as float16 (6 values), the dense weights as-is.
  specs[0].quantization = { dtype: "uint8", scale: 0.5, min: -1 };
  specs[1].quantization = { dtype: "float16" };
  const u8 = Uint8Array.from({ length: 54 }, (_, i) => i);
  const f16 = new Uint8Array(12);
  const halves = [0x3c00, 0xc000, 0x3800, 0x0000, 0x7bff, 0x0001]; // 1, -2, 0.5, 0, 65504, 2^-24
  halves.forEach((h, i) => new DataView(f16.buffer).setUint16(2 * i, h, true));
  const rest = tinyWeights.subarray((54 + 6) * 4);
  const bytes = new Uint8Array([...u8, ...f16, ...rest]);
  const a = parseBundle(enc(j), shard(bytes), LIMITS);
  const w = new Float32Array(a.weightData as ArrayBuffer);
  assert.equal(w.length, 448);
  assert.deepEqual([...w.subarray(0, 3)], [-1, -0.5, 0]);
  assert.deepEqual([...w.subarray(54, 60)], [1, -2, 0.5, 0, 65504, 2 ** -24]);
  assert.deepEqual(w.subarray(60), new Float32Array(rest.slice().buffer));
  assert.ok(a.weightSpecs!.every((s) => s.dtype === "float32" && s.quantization === undefined));
});

Deno.test("parseBundle() skips optimizer weights instead of loading them", () => {
  const j = tiny();
  j.weightsManifest[0].weights.push({
    name: "iter",
    shape: [1],
    dtype: "int32",
    group: "optimizer",
  });
  const bytes = new Uint8Array([...tinyWeights, 7, 0, 0, 0]);
  const a = parseBundle(enc(j), shard(bytes), LIMITS);
  assert.equal(a.weightSpecs!.length, 4);
  assert.equal((a.weightData as ArrayBuffer).byteLength, tinyWeights.byteLength);
});

Deno.test("linearizeOutput() and restoreOutputActivation() undo each other on a nested model", () => {
  const inner = { class_name: "Sequential", config: { name: "head", layers: [] as Json[] } };
  inner.config.layers.push({ class_name: "Dense", config: { name: "d", activation: "softmax" } });
  const outer = { class_name: "Sequential", config: { name: "m", layers: [inner] } };
  assert.equal(linearizeOutput(outer), "softmax");
  assert.equal(inner.config.layers[0].config.activation, "linear");
  assert.equal(restoreOutputActivation(outer, "softmax"), true);
  assert.equal(inner.config.layers[0].config.activation, "softmax");
  // A model whose output was never softmax is left alone.
  inner.config.layers[0].config.activation = "relu";
  assert.equal(linearizeOutput(outer), "relu");
  assert.equal(restoreOutputActivation(outer, "relu"), false);
});

// ---- hostile bundles: each must fail with the right named error, never a crash ----

Deno.test("parseBundle() refuses a model.json that is not JSON with 400", () => {
  rejects(
    () => parseBundle(new TextEncoder().encode("{not json"), shard(), LIMITS),
    MalformedInputError,
    400,
    /not valid JSON/,
  );
});

Deno.test("parseBundle() refuses a model.json that is not UTF-8 with 400", () => {
  rejects(
    () => parseBundle(new Uint8Array([0xff, 0xfe, 0x7b]), [], LIMITS),
    MalformedInputError,
    400,
  );
});

Deno.test("parseBundle() refuses a JSON array with 400", () => {
  rejects(() => parseBundle(enc([1, 2]), shard(), LIMITS), MalformedInputError, 400, /an array/);
});

Deno.test("parseBundle() refuses a model.json without weightsManifest with 400", () => {
  rejects(
    () => parseBundle(...edited((j) => delete j.weightsManifest), LIMITS),
    MalformedInputError,
    400,
    /weightsManifest/,
  );
});

Deno.test("parseBundle() refuses a model.json without modelTopology with 400", () => {
  rejects(
    () => parseBundle(...edited((j) => delete j.modelTopology), LIMITS),
    MalformedInputError,
    400,
    /modelTopology/,
  );
});

Deno.test("parseBundle() refuses a graph model with 422", () => {
  rejects(
    () => parseBundle(...edited((j) => (j.format = "graph-model")), LIMITS),
    UnsupportedModelError,
    422,
    /layers-model/,
  );
  // A graph model that omits `format` is recognised by its topology.
  rejects(
    () =>
      parseBundle(
        ...edited((j) => {
          delete j.format;
          j.modelTopology = { node: [], versions: { producer: 1 } };
        }),
        LIMITS,
      ),
    UnsupportedModelError,
    422,
    /graph model/,
  );
});

Deno.test("parseBundle() refuses a missing shard with 422 naming it", () => {
  rejects(() => parseBundle(tinyJson, [], LIMITS), UnsupportedModelError, 422, /'weights\.bin'/);
});

Deno.test("parseBundle() refuses a shard that is not in the manifest with 422", () => {
  const extra = [...shard(), { name: "other.bin", bytes: new Uint8Array(4) }];
  rejects(() => parseBundle(tinyJson, extra, LIMITS), UnsupportedModelError, 422, /other\.bin/);
});

Deno.test("parseBundle() refuses two shards with the same name with 422", () => {
  rejects(
    () => parseBundle(tinyJson, [...shard(), ...shard()], LIMITS),
    UnsupportedModelError,
    422,
    /named 'weights\.bin'/,
  );
});

Deno.test("parseBundle() refuses a short shard with 422", () => {
  const e = rejects(
    () => parseBundle(tinyJson, shard(tinyWeights.subarray(4)), LIMITS),
    UnsupportedModelError,
    422,
    /1788 bytes .* describes 1792/,
  );
  assert.deepEqual(e.details, { shards: ["weights.bin"], actualBytes: 1788, expectedBytes: 1792 });
});

Deno.test("parseBundle() refuses a long shard with 422", () => {
  const long = new Uint8Array([...tinyWeights, 0, 0, 0, 0]);
  rejects(() => parseBundle(tinyJson, shard(long), LIMITS), UnsupportedModelError, 422, /1796/);
});

Deno.test("parseBundle() refuses duplicate weight names with 422", () => {
  rejects(
    () =>
      parseBundle(...edited((j) => (j.weightsManifest[0].weights[1].name = "conv/kernel")), LIMITS),
    UnsupportedModelError,
    422,
    /'conv\/kernel' appears more than once/,
  );
});

Deno.test("parseBundle() refuses a NaN weight with 422 naming the weight", () => {
  const e = rejects(
    () => parseBundle(tinyJson, shard(weightsWith(60 + 5, NaN)), LIMITS),
    UnsupportedModelError,
    422,
    /'dense\/kernel' holds NaN/,
  );
  assert.deepEqual(e.details, { weight: "dense/kernel", index: 5 });
});

Deno.test("parseBundle() refuses an infinite weight with 422 naming the weight", () => {
  rejects(
    () => parseBundle(tinyJson, shard(weightsWith(55, -Infinity)), LIMITS),
    UnsupportedModelError,
    422,
    /'conv\/bias' holds -Infinity/,
  );
});

Deno.test("parseBundle() refuses an int32 weight with 422", () => {
  rejects(
    () => parseBundle(...edited((j) => (j.weightsManifest[0].weights[0].dtype = "int32")), LIMITS),
    UnsupportedModelError,
    422,
    /dtype "int32"; only float32/,
  );
});

Deno.test("parseBundle() refuses an unknown quantization dtype with 422", () => {
  rejects(
    () =>
      parseBundle(
        ...edited((j) => (j.weightsManifest[0].weights[0].quantization = { dtype: "int4" })),
        LIMITS,
      ),
    UnsupportedModelError,
    422,
    /uint8, uint16/,
  );
});

Deno.test("parseBundle() refuses negative and absurd weight dimensions with 422", () => {
  for (const shape of [[3, 3, -1, 6], [3, 3.5, 1, 6], [2 ** 40], [1, 1, 1, 1, 1, 1, 1]]) {
    rejects(
      () => parseBundle(...edited((j) => (j.weightsManifest[0].weights[0].shape = shape)), LIMITS),
      UnsupportedModelError,
      422,
    );
  }
});

Deno.test("parseBundle() refuses unsupported layers with 422 listing them and the supported ones", () => {
  const e = rejects(
    () =>
      parseBundle(
        ...edited((j) => {
          j.modelTopology.config.layers[1].class_name = "LSTM";
          j.modelTopology.config.layers[2].class_name = "MyCustomLayer";
        }),
        LIMITS,
      ),
    UnsupportedModelError,
    422,
    /unsupported layer class\(es\): LSTM, MyCustomLayer; supported classes are .*Conv2D/,
  );
  const details = e.details as { unsupported: string[]; supported: string[] };
  assert.deepEqual(details.unsupported, ["LSTM", "MyCustomLayer"]);
  assert.ok(details.supported.includes("Dense"));
});

Deno.test("parseBundle() finds unsupported layers inside nested models", () => {
  const [json, shards] = edited((j) => {
    const inner = { class_name: "Sequential", config: { name: "inner", layers: [] as Json[] } };
    inner.config.layers.push({ class_name: "GRU", config: { name: "gru" } });
    j.modelTopology.config.layers.push(inner);
  });
  rejects(() => parseBundle(json, shards, LIMITS), UnsupportedModelError, 422, /GRU/);
});

Deno.test("parseBundle() refuses models over the parameter limit with 413", () => {
  rejects(
    () => parseBundle(tinyJson, shard(), { ...LIMITS, maxParams: 447 }),
    LimitExceededError,
    413,
    /at most 447/,
  );
  // One weight larger than the whole budget is refused before any size arithmetic on the rest.
  rejects(
    () => parseBundle(tinyJson, shard(), { ...LIMITS, maxParams: 50 }),
    LimitExceededError,
    413,
    /'conv\/kernel' alone has 54/,
  );
});

Deno.test("parseBundle() refuses models over the layer and byte limits with 413", () => {
  rejects(
    () => parseBundle(tinyJson, shard(), { ...LIMITS, maxLayers: 3 }),
    LimitExceededError,
    413,
  );
  rejects(
    () => parseBundle(tinyJson, shard(), { ...LIMITS, maxModelJsonBytes: 100 }),
    LimitExceededError,
    413,
  );
  rejects(
    () => parseBundle(tinyJson, shard(), { ...LIMITS, maxWeightBytes: 1000 }),
    LimitExceededError,
    413,
  );
});

Deno.test("parseBundle() refuses deeply nested JSON with 400 and without overflowing the stack", () => {
  const depth = 200_000;
  const deep = new TextEncoder().encode(
    `{"modelTopology":{"a":${"[".repeat(depth)}${"]".repeat(depth)}},"weightsManifest":[]}`,
  );
  rejects(
    () => parseBundle(deep, [], { ...LIMITS, maxModelJsonBytes: 1 << 22 }),
    MalformedInputError,
    400,
    /deeper than 64/,
  );
});

Deno.test("parseBundle() refuses __proto__ keys with 400", () => {
  const text = new TextDecoder().decode(tinyJson).replace(
    '"name": "dense",',
    '"name": "dense", "__proto__": {"polluted": true},',
  );
  rejects(
    () => parseBundle(new TextEncoder().encode(text), shard(), LIMITS),
    MalformedInputError,
    400,
    /__proto__/,
  );
  assert.equal(({} as Json).polluted, undefined);
});

Deno.test("parseBundle() refuses a top level that is not a model with 422", () => {
  rejects(
    () => parseBundle(...edited((j) => (j.modelTopology.class_name = "Dense")), LIMITS),
    UnsupportedModelError,
    422,
    /Sequential, Functional, Model/,
  );
});

Deno.test("parseBundle() refuses mis-shaped layer lists and manifests with 400", () => {
  rejects(
    () => parseBundle(...edited((j) => (j.modelTopology.config.layers = {})), LIMITS),
    MalformedInputError,
    400,
  );
  rejects(
    () => parseBundle(...edited((j) => (j.modelTopology.config.layers[0] = "Conv2D")), LIMITS),
    MalformedInputError,
    400,
  );
  rejects(
    () => parseBundle(...edited((j) => (j.weightsManifest[0].paths = "weights.bin")), LIMITS),
    MalformedInputError,
    400,
  );
  rejects(
    () => parseBundle(...edited((j) => (j.weightsManifest[0].weights[0].shape = "3x3")), LIMITS),
    MalformedInputError,
    400,
  );
});

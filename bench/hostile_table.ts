/**
 * Hostile inputs and the status each gets: sends each through the in-process app (the same
 * middleware, routes and limits as the service) and prints a markdown table. Exits 1 if any got
 * a status other than the one expected (every one is a 4xx, but for the 504 of a spent budget and
 * the inputs real users send, which must be accepted), if the engine's live tensors do not return
 * to where they started, or if any input made the engine restart.
 *
 *   deno run -A bench/hostile_table.ts
 */
import jpeg from "jpeg-js";
import { deflateSync } from "node:zlib";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { engineOptions, Supervisor } from "../src/engine/supervisor.ts";
import { encodePng } from "../src/io/images.ts";
import { encodeNpy } from "../src/io/npy.ts";
import { initBackend } from "../src/tensor/backend.ts";
import { makeSet, tinySchedule, trainedBundle } from "../tests/purify/synthetic_backdoor.ts";

const backend = await initBackend("wasm");
// One engine for every row, so its tensor count and restarts cover the whole table.
const engine = new Supervisor(engineOptions(loadConfig({ BACKEND: "wasm" })));
await engine.ready();
const app = (env: Record<string, string> = {}) =>
  createApp({
    config: loadConfig({ LOG_REQUESTS: "false", BACKEND: "wasm", ...env }),
    engine,
    backend,
  });
const FIX = new URL("../tests/fixtures/tiny_cnn/", import.meta.url);
const file = (n: string) => Deno.readFileSync(new URL(n, FIX));
const MODEL = file("model.json"), WEIGHTS = file("weights.bin"), X = file("x.npy");
const Y = file("y.npy");
const modelDoc = () => JSON.parse(new TextDecoder().decode(MODEL));
const text = (s: string) => new TextEncoder().encode(s);
const json = (v: unknown) => text(JSON.stringify(v));

type PartList = [string, Uint8Array | string, string?][];

function form(parts: PartList): FormData {
  const f = new FormData();
  for (const [name, v, fn] of parts) {
    if (typeof v === "string") f.append(name, v);
    else f.append(name, new Blob([v as Uint8Array<ArrayBuffer>]), fn ?? `${name}.bin`);
  }
  return f;
}

/** The valid predict form with `edit` applied to its parts. */
function predictWith(
  edit: Partial<Record<"model" | "weights" | "images" | "params", Uint8Array | null>>,
  extra: PartList = [],
): FormData {
  const parts: PartList = [];
  const add = (name: "model" | "weights" | "images" | "params", def: Uint8Array, fn: string) => {
    const v = name in edit ? edit[name] : def;
    if (v !== null && v !== undefined) parts.push([name, v, fn]);
  };
  add("model", MODEL, "model.json");
  add("weights", WEIGHTS, "weights.bin");
  add("images", X, "x.npy");
  add("params", json({ top_k: 1 }), "params.json");
  return form([...parts, ...extra]);
}

const withLabels = (params: unknown, labels: Uint8Array = Y) =>
  form([
    ["model", MODEL, "model.json"],
    ["weights", WEIGHTS, "weights.bin"],
    ["images", X, "x.npy"],
    [
      "labels",
      labels,
      "y.npy",
    ],
    ["params", JSON.stringify(params)],
  ]);

function npy(dtype: "uint8" | "float32", shape: number[], fill: number): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return encodeNpy({ dtype, shape, data: new Array(n).fill(fill) });
}

/** An .npy with a hand-written header (anything numpy would refuse to write). */
function rawNpy(header: string, data: Uint8Array): Uint8Array {
  const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
  const h = text(header + " ".repeat(pad) + "\n");
  const out = new Uint8Array(10 + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, h.length, true);
  out.set(h, 10);
  out.set(data, 10 + h.length);
  return out;
}

const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** A valid 10×10 grey PNG whose IHDR then claims `w`×`h` (with a correct CRC). */
function pngClaiming(w: number, h: number): Uint8Array {
  const png = encodePng(10, 10, 1, new Float32Array(100).fill(0.5));
  const v = new DataView(png.buffer);
  v.setUint32(16, w);
  v.setUint32(20, h);
  let c = 0xffffffff;
  for (let i = 12; i < 29; i++) c = CRC[(c ^ png[i]) & 0xff] ^ (c >>> 8);
  v.setUint32(29, (c ^ 0xffffffff) >>> 0);
  return png;
}

function jpegClaiming(w: number, h: number): Uint8Array {
  const jpg = new Uint8Array(jpeg.encode({ width: 8, height: 8, data: new Uint8Array(256) }).data);
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
  const v = new DataView(jpg.buffer);
  v.setUint16(sof + 5, h);
  v.setUint16(sof + 7, w);
  return jpg;
}

// deno-lint-ignore no-explicit-any
function modelWith(edit: (d: Record<string, any>) => void): Uint8Array {
  const d = modelDoc();
  edit(d);
  return json(d);
}

function nanWeights(): Uint8Array {
  const w = WEIGHTS.slice();
  new DataView(w.buffer).setFloat32(8, NaN, true);
  return w;
}

// --- hostile models, each with weights that match it (so only the shapes are wrong) -------------
type Layer = [string, Record<string, unknown>];

/** A Sequential bundle on a 10×10×1 input with zero weights of the given shapes. */
function bundle(layers: Layer[], weights: [string, number[]][]): [Uint8Array, Uint8Array] {
  const doc = {
    format: "layers-model",
    modelTopology: {
      class_name: "Sequential",
      config: {
        name: "hostile",
        layers: layers.map(([class_name, config], i) => ({
          class_name,
          config: { ...(i === 0 ? { batch_input_shape: [null, 10, 10, 1] } : {}), ...config },
        })),
      },
    },
    weightsManifest: [{
      paths: ["weights.bin"],
      weights: weights.map(([name, shape]) => ({ name, shape, dtype: "float32" })),
    }],
  };
  const n = weights.reduce((a, [, sh]) => a + sh.reduce((x, y) => x * y, 1), 0);
  return [json(doc), new Uint8Array(n * 4)];
}
const conv6: Layer = ["Conv2D", { name: "conv", filters: 6, kernel_size: [3, 3] }];
const tinyWeights: [string, number[]][] = [
  ["conv/kernel", [3, 3, 1, 6]],
  ["conv/bias", [6]],
  ["dense/kernel", [96, 4]],
  ["dense/bias", [4]],
];
const dense4: Layer = ["Dense", { name: "dense", units: 4 }];
/** conv 8×8×6 → `middle` → max-pool back to 4×4×6 → flatten → dense: tiny_cnn's own weights. */
const tinyAround = (middle: Layer, pool: number) =>
  bundle([conv6, middle, ["MaxPooling2D", { name: "pool", pool_size: [pool, pool] }], [
    "Flatten",
    { name: "flat" },
  ], dense4], tinyWeights);
const ZERO_SIZE = bundle([
  ["Conv2D", { name: "conv11", filters: 4, kernel_size: [11, 11] }],
  ["GlobalAveragePooling2D", { name: "gap" }],
  ["Dense", { name: "out", units: 4 }],
], [["conv11/kernel", [11, 11, 1, 4]], ["conv11/bias", [4]], ["out/kernel", [4, 4]], [
  "out/bias",
  [4],
]]);
const HUGE_UPSAMPLING = tinyAround(["UpSampling2D", { name: "up", size: [1000, 1000] }], 2000);
const HUGE_PADDING = tinyAround(["ZeroPadding2D", { name: "pad", padding: 4000 }], 2002);
/** A 1×1 conv with `f` filters, global pooling and a dense layer. */
const wideConv = (f: number) =>
  bundle([
    ["Conv2D", { name: "wide", filters: f, kernel_size: [1, 1] }],
    ["GlobalAveragePooling2D", { name: "gap" }],
    ["Dense", { name: "out", units: 4 }],
  ], [["wide/kernel", [1, 1, 1, f]], ["wide/bias", [f]], ["out/kernel", [f, 4]], ["out/bias", [
    4,
  ]]]);
/** 120 KB of activations per image: one fits in 1 MiB, a batch of 64 does not. */
const WIDE_100 = wideConv(100);
const WIDE_CONV = wideConv(500_000);
/** A layer inserted into tiny_cnn after its pool (no weights change). */
const tinyPlus = (layer: Layer) =>
  modelWith((d) =>
    d.modelTopology.config.layers.splice(2, 0, { class_name: layer[0], config: layer[1] })
  );
const DEPTHWISE = bundle([
  ["DepthwiseConv2D", { name: "dw", kernel_size: [3, 3] }],
  ["Flatten", { name: "flat" }],
  dense4,
], [["dw/depthwise_kernel", [3, 3, 1, 1]], ["dw/bias", [1]], ["dense/kernel", [64, 4]], [
  "dense/bias",
  [4],
]]);
const DILATED = bundle([
  ["Conv2D", { name: "dil", filters: 6, kernel_size: [3, 3], dilation_rate: [2, 2] }],
  ["Flatten", { name: "flat" }],
  dense4,
], [["dil/kernel", [3, 3, 1, 6]], ["dil/bias", [6]], ["dense/kernel", [216, 4]], [
  "dense/bias",
  [4],
]]);
/** The labelled attack form (FGSM) with another model. */
const attackWith = ([model, weights]: [Uint8Array, Uint8Array]) =>
  form([
    ["model", model, "model.json"],
    ["weights", weights, "weights.bin"],
    ["images", X, "x.npy"],
    ["labels", Y, "y.npy"],
    ["params", JSON.stringify({ attack: "fgsm" })],
  ]);
/** tiny_cnn with its conv or pool config changed. */
const tinyConv = (c: Record<string, unknown>) =>
  modelWith((d) => Object.assign(d.modelTopology.config.layers[0].config, c));
const tinyPool = (c: Record<string, unknown>) =>
  modelWith((d) => Object.assign(d.modelTopology.config.layers[1].config, c));

/** A real 8000×8000 16-bit RGBA PNG of zeros: ~500 KB that inflates to 512 MB. */
function rgba16Bomb(): Uint8Array {
  const w = 8000, h = 8000, row = 1 + w * 8;
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, w);
  new DataView(ihdr.buffer).setUint32(4, h);
  ihdr.set([16, 6, 0, 0, 0], 8);
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, data.length);
    out.set(text(type), 4);
    out.set(data, 8);
    let c = 0xffffffff;
    for (let i = 4; i < 8 + data.length; i++) c = CRC[(c ^ out[i]) & 0xff] ^ (c >>> 8);
    v.setUint32(8 + data.length, (c ^ 0xffffffff) >>> 0);
    return out;
  };
  const idat = deflateSync(new Uint8Array(row * h), { level: 9 });
  const parts = [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const PNG_BOMB = rgba16Bomb();

/** A baseline jpeg-js JPEG with its SOF0 marker and sample precision rewritten. */
function jpegSof(marker: number, precision = 8): Uint8Array {
  const jpg = new Uint8Array(
    jpeg.encode({ width: 10, height: 10, data: new Uint8Array(400) }).data,
  );
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
  jpg[sof + 1] = marker;
  jpg[sof + 4] = precision;
  return jpg;
}

const deep = (n: number): unknown => {
  let v: unknown = 0;
  for (let i = 0; i < n; i++) v = [v];
  return v;
};

/** 64 labels in a hand-written dtype (what numpy writes for y.astype(...)). */
function labelsAs(descr: string, itemsize: number, values: number[]): Uint8Array {
  const data = new Uint8Array(values.length * itemsize);
  const v = new DataView(data.buffer);
  values.forEach((x, i) => {
    if (itemsize === 8) v.setBigUint64(i * 8, BigInt(x), true);
    else if (itemsize === 2) v.setUint16(i * 2, x, true);
    else v.setUint8(i, x);
  });
  return rawNpy(
    `{'descr': '${descr}', 'fortran_order': False, 'shape': (${values.length},), }`,
    data,
  );
}
const yValues = [...encodeNpyValues(Y)];
function encodeNpyValues(bytes: Uint8Array): number[] {
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint16(8, true);
  const descr = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen));
  const body = bytes.subarray(10 + headerLen);
  const size = /<i8|<u8/.test(descr) ? 8 : /<i4|<u4/.test(descr) ? 4 : /i2|u2/.test(descr) ? 2 : 1;
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return Array.from(
    { length: body.length / size },
    (_, i) =>
      size === 8
        ? Number(v.getBigInt64(i * 8, true))
        : size === 4
        ? v.getInt32(i * 4, true)
        : size === 2
        ? v.getInt16(i * 2, true)
        : v.getUint8(i),
  );
}
const boolLabels = yValues.map((v) => (v % 2 === 1 ? 1 : 0));

// --- purification fixtures: one real first round, for state-based rows --------------------------
const synthetic = await trainedBundle();
const extra = makeSet(96, 0.1, 2);
const extraX = encodeNpy({ dtype: "float32", shape: extra.images.shape, data: extra.images.data });
const extraY = encodeNpy({ dtype: "int32", shape: [extra.labels.length], data: extra.labels });
function roundForm(model: typeof synthetic, state?: Uint8Array, images = extraX): FormData {
  const f = new FormData();
  f.append("model", new Blob([model.modelJson as Uint8Array<ArrayBuffer>]), "model.json");
  for (const w of model.weights) {
    f.append("weights", new Blob([w.bytes as Uint8Array<ArrayBuffer>]), w.name);
  }
  f.append("images", new Blob([images as Uint8Array<ArrayBuffer>]), "x.npy");
  f.append("labels", new Blob([extraY as Uint8Array<ArrayBuffer>]), "y.npy");
  f.append(
    "params",
    JSON.stringify(state ? { max_steps: 2 } : { schedule: tinySchedule(), max_steps: 2 }),
  );
  if (state) f.append("state", new Blob([state as Uint8Array<ArrayBuffer>]), "state.json");
  return f;
}
const first = await app().request("/v1/purify/rounds", {
  method: "POST",
  body: roundForm(synthetic),
});
const firstForm = await first.formData();
const part = async (n: string) => new Uint8Array(await (firstForm.get(n) as File).arrayBuffer());
const state1 = await part("state");
const model1 = {
  modelJson: await part("model"),
  weights: await Promise.all(
    (firstForm.getAll("weights") as File[]).map(async (w) => ({
      name: w.name,
      bytes: new Uint8Array(await w.arrayBuffer()),
    })),
  ),
};
/** `m` with one weight nudged: a different model, same shapes. */
function otherWeights(m: typeof model1): typeof model1 {
  const w = m.weights[0].bytes.slice();
  const v = new DataView(w.buffer);
  v.setFloat32(0, v.getFloat32(0, true) + 0.01, true);
  return {
    modelJson: m.modelJson,
    weights: [{ name: m.weights[0].name, bytes: w }, ...m.weights.slice(1)],
  };
}
const stateDoc = JSON.parse(new TextDecoder().decode(state1));

// --- the table ---------------------------------------------------------------------------------
interface Row {
  group: string;
  what: string;
  expect: number;
  send: () => Promise<Response> | Response;
}

const P = (
  body: FormData | string | Uint8Array,
  headers: Record<string, string> = {},
  path = "/v1/predict",
  env?: Record<string, string>,
) =>
() => app(env).request(path, { method: "POST", body: body as BodyInit, headers });

const deepJson = "[".repeat(100_000) + "]".repeat(100_000);
const rows: Row[] = [
  // Transport, form and auth
  {
    group: "transport",
    what: "GET on a POST-only route",
    expect: 404,
    send: () => app().request("/v1/predict"),
  },
  {
    group: "transport",
    what: "JSON body instead of multipart",
    expect: 415,
    send: P("{}", { "content-type": "application/json" }),
  },
  {
    group: "transport",
    what: "multipart without a boundary",
    expect: 415,
    send: P("--x--", { "content-type": "multipart/form-data" }),
  },
  {
    group: "transport",
    what: "multipart body cut mid-part",
    expect: 400,
    send: P(text('--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n{"a'), {
      "content-type": "multipart/form-data; boundary=b",
    }),
  },
  {
    group: "transport",
    what: "body over MAX_BODY_BYTES (64 KiB here)",
    expect: 413,
    send: P(predictWith({ images: npy("uint8", [700, 10, 10, 1], 1) }), {}, "/v1/predict", {
      MAX_BODY_BYTES: "65536",
    }),
  },
  {
    group: "transport",
    what: "more parts than MAX_PARTS (16 here)",
    expect: 413,
    send: P(
      predictWith({}, Array.from({ length: 20 }, (_, i): [string, string] => [`x${i}`, "1"])),
      {},
      "/v1/predict",
      { MAX_PARTS: "16" },
    ),
  },
  {
    group: "transport",
    what: "no 'model' part",
    expect: 400,
    send: P(predictWith({ model: null })),
  },
  {
    group: "transport",
    what: "'model' part twice",
    expect: 400,
    send: P(predictWith({}, [["model", MODEL, "model.json"]])),
  },
  {
    group: "auth",
    what: "no bearer token (API_TOKEN set)",
    expect: 401,
    send: P(predictWith({}), {}, "/v1/predict", { API_TOKEN: "0123456789abcdef0123" }),
  },
  {
    group: "auth",
    what: "wrong bearer token, one character off",
    expect: 401,
    send: P(predictWith({}), { authorization: "Bearer 0123456789abcdef0124" }, "/v1/predict", {
      API_TOKEN: "0123456789abcdef0123",
    }),
  },
  {
    group: "auth",
    what: "token in the query string instead of the header",
    expect: 401,
    send: () =>
      app({ API_TOKEN: "0123456789abcdef0123" }).request("/v1/predict?token=0123456789abcdef0123", {
        method: "POST",
        body: predictWith({}),
      }),
  },
  // Model bundles
  {
    group: "model",
    what: "model.json is not JSON",
    expect: 400,
    send: P(predictWith({ model: text("{nope") })),
  },
  {
    group: "model",
    what: "model.json is not UTF-8",
    expect: 400,
    send: P(predictWith({ model: Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]) })),
  },
  {
    group: "model",
    what: "model.json is a JSON array",
    expect: 400,
    send: P(predictWith({ model: text("[1,2]") })),
  },
  {
    group: "model",
    what: "model.json nested 100,000 deep",
    expect: 400,
    send: P(predictWith({ model: text(deepJson) })),
  },
  {
    group: "model",
    what: "a '__proto__' key in the topology",
    expect: 400,
    send: P(
      predictWith({
        model: text(
          new TextDecoder().decode(MODEL).replace(
            '"config": {',
            '"config": {"__proto__": {"x": 1},',
          ),
        ),
      }),
    ),
  },
  {
    group: "model",
    what: "a graph model (format graph-model)",
    expect: 422,
    send: P(predictWith({ model: modelWith((d) => d.format = "graph-model") })),
  },
  {
    group: "model",
    what: "an unsupported layer class (Lambda)",
    expect: 422,
    send: P(
      predictWith({
        model: modelWith((d) => d.modelTopology.config.layers[0].class_name = "Lambda"),
      }),
    ),
  },
  {
    group: "model",
    what: "a layer name tfjs cannot name weights after ('a;b')",
    expect: 400,
    send: P(
      predictWith({
        model: modelWith((d) => d.modelTopology.config.layers[1].config.name = "a;b"),
      }),
    ),
  },
  {
    group: "model",
    what: "input claims 10,000×10,000 pixels (GB allocation)",
    expect: 413,
    send: P(
      predictWith({
        model: modelWith((d) =>
          d.modelTopology.config.layers[0].config.batch_input_shape = [null, 10000, 10000, 1]
        ),
      }),
    ),
  },
  {
    group: "model",
    what: "more layers than MAX_MODEL_LAYERS (3 here)",
    expect: 413,
    send: P(predictWith({}), {}, "/v1/predict", { MAX_MODEL_LAYERS: "3" }),
  },
  {
    group: "model",
    what: "weights shard missing",
    expect: 422,
    send: P(predictWith({ weights: null })),
  },
  {
    group: "model",
    what: "weights shard truncated by 4 bytes",
    expect: 422,
    send: P(predictWith({ weights: WEIGHTS.subarray(0, WEIGHTS.length - 4) })),
  },
  {
    group: "model",
    what: "a NaN weight",
    expect: 422,
    send: P(predictWith({ weights: nanWeights() })),
  },
  {
    group: "model",
    what: "manifest path '../../etc/passwd'",
    expect: 422,
    send: P(
      predictWith({ model: modelWith((d) => d.weightsManifest[0].paths = ["../../etc/passwd"]) }),
    ),
  },
  {
    group: "model",
    what: "manifest weight shape with 2^40 values",
    expect: 413,
    send: P(
      predictWith({
        model: modelWith((d) => d.weightsManifest[0].weights[0].shape = [1048576, 1048576]),
      }),
    ),
  },
  // Images
  {
    group: "images",
    what: ".npy truncated by 7 bytes",
    expect: 400,
    send: P(predictWith({ images: X.subarray(0, X.length - 7) })),
  },
  {
    group: "images",
    what: ".npy header claims 10^12 elements",
    expect: 413,
    send: P(
      predictWith({
        images: rawNpy(
          "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000, 1000, 1), }",
          new Uint8Array(4),
        ),
      }),
    ),
  },
  {
    group: "images",
    what: ".npy header is Python code, not a dict literal",
    expect: 400,
    send: P(predictWith({ images: rawNpy("__import__('os').system('id')", new Uint8Array(4)) })),
  },
  {
    group: "images",
    what: ".npy complex64 dtype",
    expect: 400,
    send: P(
      predictWith({
        images: rawNpy(
          "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
          new Uint8Array(8),
        ),
      }),
    ),
  },
  {
    group: "images",
    what: ".npy float pixels above 1",
    expect: 422,
    send: P(predictWith({ images: npy("float32", [2, 10, 10, 1], 1.5) })),
  },
  {
    group: "images",
    what: ".npy NaN pixels",
    expect: 422,
    send: P(predictWith({ images: npy("float32", [2, 10, 10, 1], NaN) })),
  },
  {
    group: "images",
    what: ".npy of rank 2",
    expect: 422,
    send: P(predictWith({ images: npy("uint8", [10, 10], 1) })),
  },
  {
    group: "images",
    what: "images 12×12 for a 10×10 model",
    expect: 422,
    send: P(predictWith({ images: npy("uint8", [2, 12, 12, 1], 1) })),
  },
  {
    group: "images",
    what: "more images than MAX_IMAGES (10 here)",
    expect: 413,
    send: P(predictWith({}), {}, "/v1/predict", { MAX_IMAGES: "10" }),
  },
  {
    group: "images",
    what: "PNG whose IHDR claims 100,000×100,000",
    expect: 413,
    send: P(predictWith({ images: null }, [["images", pngClaiming(100000, 100000), "big.png"]])),
  },
  {
    group: "images",
    what: "PNG with a corrupt IDAT",
    expect: 400,
    send: P(predictWith({ images: null }, [[
      "images",
      (() => {
        const p = encodePng(10, 10, 1, new Float32Array(100));
        p[45] ^= 0xff;
        return p;
      })(),
      "bad.png",
    ]])),
  },
  {
    group: "images",
    what: "JPEG whose frame claims 60,000×60,000",
    expect: 413,
    send: P(predictWith({ images: null }, [["images", jpegClaiming(60000, 60000), "big.jpg"]])),
  },
  {
    group: "images",
    what: "a GIF",
    expect: 415,
    send: P(predictWith({ images: null }, [["images", text("GIF89a\x01\x00\x01\x00"), "x.gif"]])),
  },
  {
    group: "images",
    what: ".npy and PNG parts mixed",
    expect: 415,
    send: P(predictWith({}, [["images", encodePng(10, 10, 1, new Float32Array(100)), "a.png"]])),
  },
  // Params and labels
  {
    group: "params",
    what: "params is not JSON",
    expect: 400,
    send: P(predictWith({ params: text("{top_k:") })),
  },
  {
    group: "params",
    what: "an unknown param key",
    expect: 400,
    send: P(predictWith({ params: json({ top_k: 1, shell: "rm -rf /" }) })),
  },
  {
    group: "params",
    what: "top_k 0",
    expect: 400,
    send: P(predictWith({ params: json({ top_k: 0 }) })),
  },
  {
    group: "params",
    what: "attack eps 7 (pixel space is [0,1])",
    expect: 400,
    send: P(withLabels({ attack: "pgd", eps: 7 }), {}, "/v1/attacks"),
  },
  {
    group: "params",
    what: "attack cost above MAX_ATTACK_COST (5,000 here)",
    expect: 422,
    send: P(withLabels({ attack: "pgd", steps: 1000, restarts: 20 }), {}, "/v1/attacks", {
      MAX_ATTACK_COST: "5000",
    }),
  },
  {
    group: "params",
    what: "labels: 3 for 64 images",
    expect: 422,
    send: P(withLabels({ attack: "fgsm" }, json([0, 1, 2])), {}, "/v1/attacks"),
  },
  {
    group: "params",
    what: "label 99 for a 4-class model",
    expect: 422,
    send: P(withLabels({ attack: "fgsm" }, json(new Array(64).fill(99))), {}, "/v1/attacks"),
  },
  {
    group: "params",
    what: "detect method 'magic'",
    expect: 400,
    send: P(withLabels({ method: "magic" }), {}, "/v1/detect"),
  },
  // Purification state
  {
    group: "purify",
    what: "state is not JSON",
    expect: 400,
    send: P(roundForm(model1, text("{state")), {}, "/v1/purify/rounds"),
  },
  {
    group: "purify",
    what: "state truncated to half",
    expect: 400,
    send: P(roundForm(model1, state1.subarray(0, state1.length >> 1)), {}, "/v1/purify/rounds"),
  },
  {
    group: "purify",
    what: "state edited (seed changed, checksum kept)",
    expect: 400,
    send: P(
      roundForm(model1, json({ ...stateDoc, seed: stateDoc.seed + 1 })),
      {},
      "/v1/purify/rounds",
    ),
  },
  {
    group: "purify",
    what: "state sent with a model whose weights differ from the returned one",
    expect: 422,
    send: P(roundForm(otherWeights(model1), state1), {}, "/v1/purify/rounds"),
  },
  {
    group: "purify",
    what: "state sent with another extra set",
    expect: 422,
    send: P(
      roundForm(
        model1,
        state1,
        encodeNpy({
          dtype: "float32",
          shape: extra.images.shape,
          data: extra.images.data.map((v) => v * 0.5),
        }),
      ),
      {},
      "/v1/purify/rounds",
    ),
  },
  {
    group: "purify",
    what: "unknown schedule preset",
    expect: 400,
    send: () => app().request("/v1/purify/schedule?preset=../../etc"),
  },
  // Layer shapes and activation budgets (static pass over the layer graph, before tfjs)
  {
    group: "shapes",
    what: "11×11 valid conv on a 10×10 input (zero-size output; wasm trapped)",
    expect: 422,
    send: P(predictWith({ model: ZERO_SIZE[0], weights: ZERO_SIZE[1] })),
  },
  {
    group: "shapes",
    what: "UpSampling2D ×1000 (1.5 GB per image, weights consistent)",
    expect: 413,
    send: P(predictWith({ model: HUGE_UPSAMPLING[0], weights: HUGE_UPSAMPLING[1] })),
  },
  {
    group: "shapes",
    what: "ZeroPadding2D of 4000 (1.5 GB per image, weights consistent)",
    expect: 413,
    send: P(predictWith({ model: HUGE_PADDING[0], weights: HUGE_PADDING[1] })),
  },
  {
    group: "shapes",
    what: "1×1 conv with 500,000 filters (12 MB of weights, 1.2 GB per image)",
    expect: 413,
    send: P(predictWith({ model: WIDE_CONV[0], weights: WIDE_CONV[1] })),
  },
  {
    group: "shapes",
    what: "conv strides [0, 1]",
    expect: 422,
    send: P(predictWith({ model: tinyConv({ strides: [0, 1] }) })),
  },
  {
    group: "shapes",
    what: "conv dilation_rate 0",
    expect: 422,
    send: P(predictWith({ model: tinyConv({ dilation_rate: 0 }) })),
  },
  {
    group: "shapes",
    what: "conv strides 2 with dilation 2 (tfjs asserts only when it runs)",
    expect: 422,
    send: P(predictWith({ model: tinyConv({ strides: 2, dilation_rate: 2 }) })),
  },
  {
    group: "shapes",
    what: "max-pool pool_size [0, 2]",
    expect: 422,
    send: P(predictWith({ model: tinyPool({ pool_size: [0, 2] }) })),
  },
  {
    group: "shapes",
    what: "max-pool 9×9 on the 8×8 conv output (zero-size)",
    expect: 422,
    send: P(predictWith({ model: tinyPool({ pool_size: [9, 9], strides: [9, 9] }) })),
  },
  {
    group: "shapes",
    what: "two layers named 'conv'",
    expect: 422,
    send: P(
      predictWith({
        model: modelWith((d) => d.modelTopology.config.layers[2].config.name = "conv"),
      }),
    ),
  },
  {
    group: "shapes",
    what:
      "MAX_ACTIVATION_BYTES 1 MiB: 64 images through a 100-filter conv (checked before it runs)",
    expect: 413,
    send: P(predictWith({ model: WIDE_100[0], weights: WIDE_100[1] }), {}, "/v1/predict", {
      MAX_ACTIVATION_BYTES: "1048576",
    }),
  },
  {
    group: "shapes",
    what: "the same 64 images and model under the default budget (accepted)",
    expect: 200,
    send: P(predictWith({ model: WIDE_100[0], weights: WIDE_100[1] })),
  },
  {
    group: "shapes",
    what: "a Softmax layer over axis 1 of [N, 4, 4, 6] (tfjs fails only when it runs)",
    expect: 422,
    send: P(predictWith({ model: tinyPlus(["Softmax", { name: "sm", axis: 1 }]) })),
  },
  {
    group: "shapes",
    what: "a Softmax layer with no axis (tfjs' default is 1, not -1)",
    expect: 422,
    send: P(predictWith({ model: tinyPlus(["Softmax", { name: "sm" }]) })),
  },
  {
    group: "shapes",
    what: "ReLU max_value -1",
    expect: 422,
    send: P(predictWith({ model: tinyPlus(["ReLU", { name: "re", max_value: -1 }]) })),
  },
  {
    group: "shapes",
    what: "Rescaling scale [1, 2, 3] on 6 channels",
    expect: 422,
    send: P(
      predictWith({ model: tinyPlus(["Rescaling", { name: "rs", scale: [1, 2, 3], offset: 0 }]) }),
    ),
  },
  {
    group: "shapes",
    what: "Dropout noise_shape [1, 2, 3]",
    expect: 422,
    send: P(
      predictWith({
        model: tinyPlus(["Dropout", { name: "do", rate: 0.5, noise_shape: [1, 2, 3] }]),
      }),
    ),
  },
  {
    group: "shapes",
    what: "attack through a DepthwiseConv2D on wasm (no backward kernel)",
    expect: 422,
    send: P(attackWith(DEPTHWISE), {}, "/v1/attacks?format=json"),
  },
  {
    group: "shapes",
    what: "predict through the same DepthwiseConv2D (accepted)",
    expect: 200,
    send: P(predictWith({ model: DEPTHWISE[0], weights: DEPTHWISE[1] })),
  },
  {
    group: "shapes",
    what: "attack through a dilated Conv2D (tfjs has no gradient for it)",
    expect: 422,
    send: P(attackWith(DILATED), {}, "/v1/attacks?format=json"),
  },
  // Decoding budgeted from the file's own header
  {
    group: "images",
    what: `16-bit RGBA PNG bomb, 8000×8000 (${Math.round(PNG_BOMB.length / 1024)} KB → 512 MB)`,
    expect: 413,
    send: P(predictWith({ images: null }, [["images", PNG_BOMB, "bomb.png"]])),
  },
  {
    group: "images",
    what: "12-bit JPEG (SOF1, precision 12)",
    expect: 415,
    send: P(predictWith({ images: null }, [["images", jpegSof(0xc1, 12), "deep.jpg"]])),
  },
  {
    group: "images",
    what: "arithmetic-coded JPEG (SOF9)",
    expect: 415,
    send: P(predictWith({ images: null }, [["images", jpegSof(0xc9), "arith.jpg"]])),
  },
  // JSON depth in every part
  {
    group: "params",
    what: "params with a 5,000-deep value",
    expect: 400,
    send: P(predictWith({ params: json({ top_k: 1, x: deep(5000) }) })),
  },
  {
    group: "params",
    what: "preprocess.std 1e-6",
    expect: 400,
    send: P(predictWith({ params: json({ top_k: 1, preprocess: { mean: [0.5], std: [1e-6] } }) })),
  },
  {
    group: "purify",
    what: "state with a 5,000-deep value inside (was a 500)",
    expect: 400,
    send: P(
      roundForm(model1, json({ ...stateDoc, events: [{ deep: deep(5000) }] })),
      {},
      "/v1/purify/rounds",
    ),
  },
  {
    group: "purify",
    what: "state nested 100,000 deep",
    expect: 400,
    send: P(roundForm(model1, text(deepJson)), {}, "/v1/purify/rounds"),
  },
  // Inputs real users send: accepted
  {
    group: "accepted",
    what: "labels as bool .npy (b1)",
    expect: 200,
    send: P(
      withLabels({ attack: "fgsm" }, labelsAs("|b1", 1, boolLabels)),
      {},
      "/v1/attacks?format=json",
    ),
  },
  {
    group: "accepted",
    what: "labels as int8 .npy (i1)",
    expect: 200,
    send: P(
      withLabels({ attack: "fgsm" }, labelsAs("|i1", 1, yValues)),
      {},
      "/v1/attacks?format=json",
    ),
  },
  {
    group: "accepted",
    what: "labels as uint16 .npy (u2)",
    expect: 200,
    send: P(
      withLabels({ attack: "fgsm" }, labelsAs("<u2", 2, yValues)),
      {},
      "/v1/attacks?format=json",
    ),
  },
  {
    group: "accepted",
    what: "labels as uint64 .npy (u8)",
    expect: 200,
    send: P(
      withLabels({ attack: "fgsm" }, labelsAs("<u8", 8, yValues)),
      {},
      "/v1/attacks?format=json",
    ),
  },
  {
    group: "accepted",
    what: "is_poison as bool .npy (b1)",
    expect: 200,
    send: P(
      (() => {
        const f = withLabels({ method: "spectral" });
        f.append(
          "is_poison",
          new Blob([
            labelsAs("|b1", 1, yValues.map((_, i) => (i % 16 === 0 ? 1 : 0))) as Uint8Array<
              ArrayBuffer
            >,
          ]),
          "is_poison.npy",
        );
        return f;
      })(),
      {},
      "/v1/detect",
    ),
  },
  // Budgets
  {
    group: "budget",
    what: "request over REQUEST_TIMEOUT_MS (1 s here)",
    expect: 504,
    send: P(
      withLabels({ attack: "pgd", steps: 1000, restarts: 20, early_stop: false }),
      {},
      "/v1/attacks?format=json",
      { REQUEST_TIMEOUT_MS: "1000" },
    ),
  },
  {
    group: "after",
    what: "the next valid request after all of the above is served",
    expect: 200,
    send: P(predictWith({})),
  },
  {
    group: "headers",
    what: "X-Request-Id of 1,000 characters (replaced by a fresh id)",
    expect: 200,
    send: () => app().request("/healthz", { headers: { "x-request-id": "a".repeat(1000) } }),
  },
];

const out: string[] = [
  "| # | group | hostile input | status | code | expected |",
  "|---|---|---|---|---|---|",
];
let bad = 0;
// Tensors live in the engine's worker: its count after each job is what must come back.
const before = engine.snapshot().tensors;
for (const [i, r] of rows.entries()) {
  const res = await r.send();
  const body = await res.text();
  let code = "";
  try {
    code = JSON.parse(body).error?.code ?? "";
  } catch { /* not JSON (a 200 multipart) */ }
  const ok = res.status === r.expect;
  if (!ok) bad++;
  out.push(
    `| ${i + 1} | ${r.group} | ${r.what} | ${res.status} | ${code} | ${
      ok ? r.expect : `**${r.expect}**`
    } |`,
  );
  if (Deno.env.get("TRACE_TENSORS")) console.error(i + 1, engine.snapshot().tensors);
}
// A 504 answers at the deadline while its job stops at its next step: let it finish stopping.
for (let t = 0; t < 100 && engine.snapshot().tensors !== before; t++) {
  await new Promise((r) => setTimeout(r, 50));
}
const snap = engine.snapshot();
if (snap.tensors !== before) bad++;
const restarts = Object.values(snap.restarts).reduce((a, b) => a + b, 0);
// Nothing here may take the engine down: every refusal happens before tfjs allocates.
if (restarts !== 0) bad++;
console.log(out.join("\n"));
console.log(
  `\n${rows.length} inputs, ${bad} unexpected; engine tensors ${before} before, ${snap.tensors} ` +
    `after; engine restarts ${restarts} (${JSON.stringify(snap.restarts)})`,
);
engine.close();
Deno.exit(bad ? 1 : 0);

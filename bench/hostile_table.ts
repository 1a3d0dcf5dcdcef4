/**
 * Hostile inputs and the status each gets: sends each through the in-process app (the same
 * middleware, routes and limits as the service) and prints a markdown table. Exits 1 if any got
 * a status other than the one expected (every one is a 4xx, but for the 504 of a spent budget),
 * or if live tensors do not return to where they started.
 *
 *   deno run -A bench/hostile_table.ts
 */
import jpeg from "jpeg-js";
import * as tf from "@tensorflow/tfjs";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { encodePng } from "../src/io/images.ts";
import { encodeNpy } from "../src/io/npy.ts";
import { initBackend } from "../src/tensor/backend.ts";
import { makeSet, tinySchedule, trainedBundle } from "../tests/purify/synthetic_backdoor.ts";

const backend = await initBackend("wasm");
const app = (env: Record<string, string> = {}) =>
  createApp({ config: loadConfig({ LOG_REQUESTS: "false", ...env }), backend });
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
    expect: 422,
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
const before = tf.memory().numTensors;
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
  if (Deno.env.get("TRACE_TENSORS")) console.error(i + 1, tf.memory().numTensors);
}
// A 504 answers at the deadline while its job stops at its next step: let it finish stopping.
for (let t = 0; t < 100 && tf.memory().numTensors !== before; t++) {
  await new Promise((r) => setTimeout(r, 50));
}
if (tf.memory().numTensors !== before) bad++;
console.log(out.join("\n"));
console.log(
  `\n${rows.length} inputs, ${bad} unexpected; live tensors ${before} before, ${tf.memory().numTensors} after`,
);
Deno.exit(bad ? 1 : 0);

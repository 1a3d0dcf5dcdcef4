import assert from "node:assert/strict";
import fc from "fast-check";
import { engineTensors, fixtureBytes, setupBackend, testApp } from "../_helpers.ts";
import { encodePng } from "../../src/io/images.ts";
import {
  type ByteOpList,
  byteOps,
  concat,
  jsonBytes,
  type JsonOpList,
  jsonOps,
  mutateBytes,
  mutateJson,
  Outcomes,
  params,
  withinMs,
} from "./_fuzz.ts";

const enc = new TextEncoder();
const MODEL = JSON.parse(new TextDecoder().decode(fixtureBytes("model.json")));
const PARAMS = { top_k: 2, logits: true, batch_size: 16 };

/** Contents a part may carry, before mutation. */
const CONTENT: Record<string, () => Uint8Array> = {
  model: () => fixtureBytes("model.json"),
  weights: () => fixtureBytes("weights.bin"),
  npy: () => fixtureBytes("x.npy"),
  labels: () => fixtureBytes("y.npy"),
  png: () => encodePng(10, 10, 1, new Float32Array(100).fill(0.5)),
  params: () => jsonBytes(PARAMS),
  empty: () => new Uint8Array(),
  text: () => enc.encode("hello"),
};

interface Part {
  name: string;
  filename?: string;
  type?: string;
  body: Uint8Array;
}

const partName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom("model", "weights", "images", "params", "labels") },
  { weight: 1, arbitrary: fc.constantFrom("", "x", "model ", "MODEL", 'a"b', "state") },
);

const contentFor = fc.record({
  kind: fc.constantFrom(...Object.keys(CONTENT)),
  bytes: fc.oneof({ weight: 2, arbitrary: fc.constant<ByteOpList>([]) }, {
    weight: 1,
    arbitrary: byteOps,
  }),
  json: fc.oneof({ weight: 2, arbitrary: fc.constant<JsonOpList>([]) }, {
    weight: 1,
    arbitrary: jsonOps,
  }),
});

function content(c: { kind: string; bytes: ByteOpList; json: JsonOpList }): Uint8Array {
  let b: Uint8Array;
  if (c.kind === "model" && c.json.length) b = jsonBytes(mutateJson(MODEL, c.json));
  else if (c.kind === "params" && c.json.length) b = jsonBytes(mutateJson(PARAMS, c.json));
  else b = CONTENT[c.kind]();
  return c.bytes.length ? mutateBytes(b, c.bytes) : b;
}

const filename = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom("weights.bin", "x.npy", "model.json", "../weights.bin") },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);

/** A form built from the grammar: any names, any contents, any count. */
const grammarParts = fc.array(
  fc.record({
    name: partName,
    c: contentFor,
    filename,
    type: fc.option(fc.constantFrom("application/json", "image/png", "text/plain", ""), {
      nil: undefined,
    }),
  }),
  { minLength: 0, maxLength: 7 },
).map((ps) =>
  ps.map((p): Part => ({
    name: p.name,
    filename: p.filename ?? (p.c.kind === "params" ? undefined : `${p.c.kind}.bin`),
    type: p.type,
    body: content(p.c),
  }))
);

/** The valid form, with one part mutated, dropped or duplicated: the likeliest real mistakes. */
const nearValid = fc.record({
  which: fc.integer({ min: 0, max: 3 }),
  how: fc.constantFrom("mutate", "mutate", "mutate", "drop", "dup", "rename"),
  c: contentFor,
}).map(({ which, how, c }) => {
  const parts: Part[] = [
    { name: "model", filename: "model.json", body: CONTENT.model() },
    { name: "weights", filename: "weights.bin", body: CONTENT.weights() },
    { name: "images", filename: "x.npy", body: CONTENT.npy() },
    { name: "params", body: CONTENT.params() },
  ];
  const p = parts[which];
  if (how === "drop") parts.splice(which, 1);
  else if (how === "dup") parts.push({ ...p });
  else if (how === "rename") p.filename = "other.bin";
  else {
    p.body = p.name === "model" || p.name === "params"
      ? content({ ...c, kind: p.name })
      : content({ ...c, kind: p.name === "images" ? "npy" : p.name });
  }
  return parts;
});

function serialize(parts: Part[], boundary: string): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    head += "\r\n";
    if (p.type !== undefined) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(enc.encode(head + "\r\n"), p.body, enc.encode("\r\n"));
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`));
  return concat(...chunks);
}

const request = fc.record({
  parts: fc.oneof({ weight: 3, arbitrary: nearValid }, { weight: 2, arbitrary: grammarParts }),
  body: fc.oneof({ weight: 5, arbitrary: fc.constant<ByteOpList>([]) }, {
    weight: 1,
    arbitrary: byteOps,
  }),
  header: fc.constantFrom(
    "ok",
    "ok",
    "ok",
    "ok",
    "ok",
    "noBoundary",
    "otherBoundary",
    "json",
    "none",
  ),
  route: fc.constantFrom("/v1/predict", "/v1/predict", "/v1/predict", "/v1/attacks", "/v1/detect"),
});

Deno.test("fuzz: mutated multipart requests get 2xx or 4xx, never 500, and leave no tensor behind", async () => {
  const app = await testApp({ MAX_PARTS: "16" });
  await setupBackend();
  const seen = new Outcomes("POST mutated multipart");
  const tensors = engineTensors(app);
  const logged: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => logged.push(a.map(String).join(" "));
  try {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const boundary = "fuzzBoundary7MA4YWxk";
        let body = serialize(r.parts, boundary);
        if (r.body.length) body = mutateBytes(body, r.body);
        const headers: Record<string, string> = {};
        if (r.header === "ok") {
          headers["content-type"] = `multipart/form-data; boundary=${boundary}`;
        } else if (r.header === "noBoundary") headers["content-type"] = "multipart/form-data";
        else if (r.header === "otherBoundary") {
          headers["content-type"] = "multipart/form-data; boundary=different";
        } else if (r.header === "json") headers["content-type"] = "application/json";
        const res = await withinMs(10_000, "request", () =>
          app.request(`${r.route}?format=json`, {
            method: "POST",
            headers,
            body: body as Uint8Array<ArrayBuffer>,
          }));
        const text = await res.text();
        seen.add(res.status);
        assert.ok(res.status < 500, `${res.status}: ${text.slice(0, 300)}`);
        if (res.status >= 400) {
          const err = JSON.parse(text).error;
          assert.equal(typeof err.code, "string");
          assert.ok(!text.includes("    at "), "stack trace in the error body");
        }
        assert.equal(engineTensors(app), tensors, "the engine holds no new tensor");
        assert.deepEqual(logged, []);
      }),
      params(300),
    );
  } finally {
    console.error = orig;
  }
  seen.report();
});

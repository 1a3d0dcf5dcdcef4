import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { encode as encodePngFile } from "fast-png";
import {
  blobOf,
  engineTensors,
  errorCode,
  fixtureBytes,
  fixtureForm,
  setupBackend,
  testApp,
} from "../_helpers.ts";
import { parseBundle } from "../../src/io/model_bundle.ts";
import { parseNpy } from "../../src/io/npy.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";

const LIMITS = {
  maxModelJsonBytes: 1 << 20,
  maxWeightBytes: 1 << 20,
  maxParams: 1e6,
  maxLayers: 100,
};

/** The model's own in-process softmax outputs on the fixture images. */
async function inProcess(): Promise<{ probs: Float32Array; k: number }> {
  await setupBackend();
  const art = parseBundle(fixtureBytes("model.json"), [{
    name: "weights.bin",
    bytes: fixtureBytes("weights.bin"),
  }], LIMITS);
  const clf = await loadClassifier(art);
  const x = parseNpy(fixtureBytes("x.npy"));
  const t = tf.tidy(() =>
    tf.softmax(clf.logits(tf.tensor4d(Float32Array.from(x.data as Uint8Array, (v) => v / 255), [
      x.shape[0],
      x.shape[1],
      x.shape[2],
      x.shape[3],
    ])))
  );
  const probs = await t.data() as Float32Array;
  t.dispose();
  clf.dispose();
  return { probs, k: clf.numClasses };
}

Deno.test("POST /v1/predict returns the classes and probabilities the model computes in-process", async () => {
  const app = await testApp();
  const want = await inProcess();
  const before = engineTensors(app);
  const res = await app.request("/v1/predict", {
    method: "POST",
    body: fixtureForm({ params: { top_k: 4, logits: true } }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(engineTensors(app), before);
  assert.equal(body.predictions.length, 64);
  assert.deepEqual(body.model, { input_shape: [10, 10, 1], num_classes: 4 });
  for (const p of body.predictions) {
    const row = want.probs.subarray(p.index * want.k, (p.index + 1) * want.k);
    const argmax = row.indexOf(Math.max(...row));
    assert.equal(p.class, argmax);
    assert.equal(p.top.length, 4);
    assert.equal(p.logits.length, 4);
    for (const t of p.top) assert.ok(Math.abs(t.probability - row[t.class]) < 1e-5);
  }
  // The fixture is a trained model: most held-out predictions match the labels.
  const y = parseNpy(fixtureBytes("y.npy")).data as Int32Array;
  const correct =
    body.predictions.filter((p: { index: number; class: number }) => p.class === y[p.index]).length;
  assert.ok(correct >= 58, `accuracy ${correct}/64`);
});

Deno.test("POST /v1/predict accepts PNG files and agrees with the .npy path", async () => {
  const app = await testApp();
  const x = parseNpy(fixtureBytes("x.npy"));
  const per = 100;
  const form = fixtureForm({ images: false });
  for (let i = 0; i < 3; i++) {
    const png = encodePngFile({
      width: 10,
      height: 10,
      channels: 1,
      depth: 8,
      data: (x.data as Uint8Array).slice(i * per, (i + 1) * per),
    });
    form.append("images", blobOf(png, "image/png"), `img${i}.png`);
  }
  const viaPng = await (await app.request("/v1/predict", { method: "POST", body: form })).json();
  const viaNpy = await (await app.request("/v1/predict", { method: "POST", body: fixtureForm() }))
    .json();
  assert.equal(viaPng.predictions.length, 3);
  for (let i = 0; i < 3; i++) {
    assert.equal(viaPng.predictions[i].class, viaNpy.predictions[i].class);
    assert.ok(
      Math.abs(
        viaPng.predictions[i].top[0].probability - viaNpy.predictions[i].top[0].probability,
      ) <
        1e-6,
    );
  }
});

/** Each hostile request, the status it must get, and optionally its error code. */
function hostile(): [string, () => RequestInit, number, string?][] {
  const without = (drop: string) => () => {
    const f = fixtureForm();
    f.delete(drop);
    return { method: "POST", body: f };
  };
  const withParams = (params: string) => () => {
    const f = fixtureForm();
    f.append("params", params);
    return { method: "POST", body: f };
  };
  const withImages = (parts: [Uint8Array, string][]) => () => {
    const f = fixtureForm({ images: false });
    for (const [b, n] of parts) f.append("images", blobOf(b), n);
    return { method: "POST", body: f };
  };
  const npy12 = new Uint8Array([
    ...fixtureBytes("x.npy").slice(0, 10),
  ]);
  return [
    ["no model part", without("model"), 400, "missing_part"],
    ["no images part", without("images"), 400, "missing_part"],
    ["no weights part", without("weights"), 422, "unsupported_model"],
    ["params not JSON", withParams("{top_k:"), 400, "malformed_input"],
    ["params with an unknown key", withParams('{"topk": 3}'), 400, "invalid_params"],
    ["top_k of 0", withParams('{"top_k": 0}'), 400, "invalid_params"],
    ["batch_size above its bound", withParams('{"batch_size": 100000}'), 400, "invalid_params"],
    [
      "preprocess with negative std",
      withParams('{"preprocess": {"mean": [0], "std": [-1]}}'),
      400,
      "invalid_params",
    ],
    [
      "preprocess with the wrong channel count",
      withParams('{"preprocess": {"mean": [0, 0, 0], "std": [1, 1, 1]}}'),
      422,
      "shape_mismatch",
    ],
    ["a truncated .npy", withImages([[npy12, "x.npy"]]), 400, "malformed_input"],
    ["images that are not images", withImages([[new TextEncoder().encode("hello"), "a.png"]]), 415],
    [
      "a .npy mixed with a PNG",
      withImages([[fixtureBytes("x.npy"), "x.npy"], [fixtureBytes("x.npy"), "y.npy"]]),
      415,
    ],
    [
      "images of the wrong size for the model",
      withImages([[
        encodePngFile({ width: 12, height: 12, channels: 1, data: new Uint8Array(144) }),
        "a.png",
      ]]),
      422,
      "shape_mismatch",
    ],
    ["a JSON body", () => ({ method: "POST", body: "{}" }), 415, "unsupported_media_type"],
    ["GET on a POST route", () => ({ method: "GET" }), 404],
  ];
}

Deno.test("POST /v1/predict answers each hostile input with its 4xx, leaves no tensor and keeps serving", async () => {
  const app = await testApp();
  await setupBackend();
  const before = engineTensors(app);
  for (const [what, init, status, code] of hostile()) {
    const res = await app.request("/v1/predict", init());
    const got = await errorCode(res, status).catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    if (code) assert.equal(got, code, what);
    assert.equal(engineTensors(app), before, `tensors leaked on: ${what}`);
  }
  const ok = await app.request("/v1/predict", { method: "POST", body: fixtureForm() });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});

Deno.test("POST /v1/predict refuses more images than MAX_IMAGES with 413", async () => {
  const app = await testApp({ MAX_IMAGES: "10" });
  assert.equal(
    await errorCode(await app.request("/v1/predict", { method: "POST", body: fixtureForm() }), 413),
    "limit_exceeded",
  );
});

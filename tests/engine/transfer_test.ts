/** Inputs reach the engine as moved buffers (no copies), and results come back the same way. */
import assert from "node:assert/strict";
import { fixtureBytes, testApp } from "../_helpers.ts";
import { loadConfig } from "../../src/config.ts";
import { parseBundle } from "../../src/io/model_bundle.ts";

Deno.test("a job's part and weight buffers are moved to the worker, not copied", async () => {
  const app = await testApp();
  const config = loadConfig({});
  const images = fixtureBytes("x.npy");
  const bundle = parseBundle(fixtureBytes("model.json"), [{
    name: "weights.bin",
    bytes: fixtureBytes("weights.bin"),
  }], {
    maxModelJsonBytes: config.MAX_MODEL_JSON_BYTES,
    maxWeightBytes: config.MAX_WEIGHT_BYTES,
    maxParams: config.MAX_MODEL_PARAMS,
    maxLayers: config.MAX_MODEL_LAYERS,
  });
  const weights = bundle.weightData as ArrayBuffer;
  const out = await app.engine.run("predict", {
    params: { top_k: 1, logits: false, batch_size: 16 },
    parts: { images: [{ name: "x.npy", bytes: images, type: "" }] },
    bundles: { "": bundle },
    extras: {},
    config,
  }, { signal: new AbortController().signal, transfer: [images.buffer as ArrayBuffer, weights] });
  assert.equal((out.json as { predictions: unknown[] }).predictions.length, 64);
  assert.equal(images.buffer.byteLength, 0, "the image bytes moved to the worker");
  assert.equal(weights.byteLength, 0, "the weights moved to the worker");
});

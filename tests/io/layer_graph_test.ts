import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { fixtureBytes, setupBackend } from "../_helpers.ts";
import { HttpError, MalformedInputError } from "../../src/errors.ts";
import { parseBundle } from "../../src/io/model_bundle.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";

const LIMITS = {
  maxModelJsonBytes: 1 << 20,
  maxWeightBytes: 1 << 22,
  maxParams: 1 << 20,
  maxLayers: 64,
};
const SHARDS = ["group1-shard1of2.bin", "group1-shard2of2.bin"].map((name) => ({
  name,
  bytes: fixtureBytes(`residual/${name}`),
}));

// deno-lint-ignore no-explicit-any
type Doc = any;

/** The residual fixture's model.json, edited by `edit`. */
function residual(edit: (doc: Doc) => void): Uint8Array {
  const doc = JSON.parse(new TextDecoder().decode(fixtureBytes("residual/model.json")));
  edit(doc);
  return new TextEncoder().encode(JSON.stringify(doc));
}

const layers = (d: Doc) => d.modelTopology.config.layers;

Deno.test("parseBundle() refuses Functional graphs on which tfjs would wait forever", () => {
  const bad: [string, (d: Doc) => void][] = [
    ["an unknown layer", (d) => layers(d)[3].inbound_nodes[0][0] = ["nope", 0, 0, {}]],
    ["a node index never created", (d) => layers(d)[3].inbound_nodes[0][0] = ["conv_a", 5, 0, {}]],
    ["a bare number", (d) => layers(d)[3].inbound_nodes[0][0] = 9007199254740994],
    ["a missing nesting level", (d) => layers(d)[3].inbound_nodes[0] = "conv_a"],
    ["a cycle", (d) => layers(d)[1].inbound_nodes[0][0] = ["conv_b", 0, 0, {}]],
  ];
  for (const [what, edit] of bad) {
    assert.throws(
      () => parseBundle(residual(edit), SHARDS, LIMITS),
      (e) => e instanceof MalformedInputError && /wait for it forever/.test(e.message),
      what,
    );
  }
  // The same graph, untouched, and with a layer listed before the one it reads from.
  parseBundle(residual(() => {}), SHARDS, LIMITS);
  parseBundle(residual((d) => layers(d).reverse()), SHARDS, LIMITS);
});

Deno.test("parseBundle() refuses layer names tfjs cannot name weights after", () => {
  for (const name of ["dense;x", { a: 1 }, "-lead"]) {
    assert.throws(
      () => parseBundle(residual((d) => layers(d)[1].config.name = name), SHARDS, LIMITS),
      MalformedInputError,
    );
  }
});

Deno.test("loading a topology that claims more weight values than its manifest allocates nothing", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const huge = residual((d) => layers(d)[0].config.batch_input_shape = [null, 10_000, 1000, 1]);
  const t0 = performance.now();
  // With the default activation budget parseBundle refuses it first (413); without one, the
  // loader's weight budget still stops it.
  assert.throws(
    () => parseBundle(huge, SHARDS, LIMITS),
    (e) => e instanceof HttpError && e.status === 413,
  );
  const unbudgeted = { ...LIMITS, maxActivationBytes: Number.MAX_SAFE_INTEGER };
  await assert.rejects(
    () => loadClassifier(parseBundle(huge, SHARDS, unbudgeted)),
    (e) => e instanceof HttpError && e.status === 422 && /more values than/.test(e.message),
  );
  assert.ok(performance.now() - t0 < 2000, "refused before allocating");
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("a failed load leaves no variable behind, unnamed layers and cut-off layers included", async () => {
  await setupBackend();
  const tensors = tf.memory().numTensors;
  const vars = Object.keys(tf.engine().registeredVariables).length;
  const broken = [
    residual((d) => d.modelTopology.config.output_layers[0][0] = "conv_a"),
    residual((d) => {
      delete layers(d)[2].config.name;
      d.modelTopology.config.input_layers[0][0] = "";
    }),
    residual((d) => layers(d)[8].config.activation = "no-such-activation"),
  ];
  // The loader's own clean-up is under test: the topology goes to it unchecked (parseBundle's
  // static pass would refuse some of these before tfjs builds anything).
  const valid = parseBundle(residual(() => {}), SHARDS, LIMITS);
  for (const json of broken) {
    const modelTopology = JSON.parse(new TextDecoder().decode(json)).modelTopology;
    await assert.rejects(() => loadClassifier({ ...valid, modelTopology }), HttpError);
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(Object.keys(tf.engine().registeredVariables).length, vars);
  }
});

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs";
import { fixtureBytes, setupBackend } from "../_helpers.ts";
import { trainedBundle } from "../purify/synthetic_backdoor.ts";
import { type BundleFile, parseBundle } from "../../src/io/model_bundle.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import {
  byteOps,
  jsonBytes,
  jsonOps,
  mutateBytes,
  mutateJson,
  outcomeAsync,
  Outcomes,
  params,
  withinMs,
} from "./_fuzz.ts";

/** The service's default limits, but small enough that a mutated size cannot eat the machine. */
const LIMITS = {
  maxModelJsonBytes: 1 << 20,
  maxWeightBytes: 1 << 22,
  maxParams: 1 << 20,
  maxLayers: 64,
};

interface Seed {
  doc: unknown;
  shards: BundleFile[];
}

async function seeds(): Promise<Seed[]> {
  const json = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));
  const residual = (name: string) => fixtureBytes(`residual/${name}`);
  const synthetic = await trainedBundle();
  return [
    {
      doc: json(fixtureBytes("model.json")),
      shards: [{ name: "weights.bin", bytes: fixtureBytes("weights.bin") }],
    },
    {
      doc: json(residual("model.json")),
      shards: ["group1-shard1of2.bin", "group1-shard2of2.bin"].map((name) => ({
        name,
        bytes: residual(name),
      })),
    },
    { doc: json(synthetic.modelJson), shards: synthetic.weights },
  ];
}

/** How one input is built from a seed: JSON edits, shard edits, shard list edits. */
const plan = fc.record({
  seed: fc.nat(),
  json: fc.oneof({ weight: 4, arbitrary: jsonOps }, { weight: 1, arbitrary: fc.constant([]) }),
  shard: fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.tuple(fc.nat(), byteOps) },
  ),
  shards: fc.constantFrom("keep", "keep", "keep", "keep", "drop", "dup", "rename", "none"),
  rawJson: fc.oneof(
    { weight: 9, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: byteOps },
  ),
});

function build(seeds: Seed[], p: PlanValue) {
  const s = seeds[p.seed % seeds.length];
  let modelJson = jsonBytes(p.json.length ? mutateJson(s.doc, p.json) : s.doc);
  if (p.rawJson) modelJson = mutateBytes(modelJson, p.rawJson);
  let shards = s.shards.map((x) => ({ name: x.name, bytes: x.bytes }));
  if (p.shard) {
    const i = p.shard[0] % shards.length;
    shards[i] = { name: shards[i].name, bytes: mutateBytes(shards[i].bytes, p.shard[1]) };
  }
  if (p.shards === "drop") shards = shards.slice(1);
  else if (p.shards === "dup") shards = [...shards, shards[0]];
  else if (p.shards === "rename") shards = [{ ...shards[0], name: "../" + shards[0].name }];
  else if (p.shards === "none") shards = [];
  return { modelJson, shards };
}

type PlanValue = typeof plan extends fc.Arbitrary<infer T> ? T : never;

Deno.test("fuzz: parseBundle() and loadClassifier() on mutated bundles: a working model or an HttpError, no leak", async () => {
  await setupBackend();
  const base = await seeds();
  const seen = new Outcomes("parseBundle+loadClassifier(mutated)");
  const tensors = tf.memory().numTensors;
  const variables = Object.keys(tf.engine().registeredVariables).length;
  await fc.assert(
    fc.asyncProperty(plan, async (p) => {
      const { modelJson, shards } = build(base, p);
      // A synchronous hang cannot be timed out from inside: FUZZ_TRACE=file keeps the input
      // being tried, to find the one a hung run was stuck on.
      if (Deno.env.get("FUZZ_TRACE")) {
        Deno.writeFileSync(Deno.env.get("FUZZ_TRACE")!, modelJson);
      }
      let stage = "parse";
      const got = await withinMs(5000, "parse and load", () =>
        outcomeAsync(async () => {
          const artifacts = parseBundle(modelJson, shards, LIMITS);
          stage = "load";
          const clf = await loadClassifier(artifacts);
          stage = "forward";
          try {
            const [h, w, c] = clf.inputShape;
            assert.ok(h * w * c <= LIMITS.maxParams * 16, `input ${clf.inputShape}`);
            const z = tf.tidy(() => clf.logits(tf.zeros([2, h, w, c]) as tf.Tensor4D));
            assert.deepEqual(z.shape, [2, clf.numClasses]);
            z.dispose();
            // What attacks and training do: an input gradient, in training mode (dropout masks,
            // batch statistics). tfjs fails some configs only here, with plain errors (500s).
            stage = "gradient";
            const g = tf.tidy(() => {
              const x = tf.zeros([2, h, w, c]) as tf.Tensor4D;
              return tf.grad((v: tf.Tensor) => clf.logits(v as tf.Tensor4D, true).sum())(x);
            });
            assert.deepEqual(g.shape, [2, h, w, c]);
            g.dispose();
          } finally {
            clf.dispose();
          }
        }));
      seen.add(got === "ok" ? "ok" : `${stage}:${got}`);
      assert.ok(got === "ok" || [400, 413, 415, 422].includes(got), `status ${got}`);
      assert.equal(tf.memory().numTensors, tensors, `tensors after ${stage}`);
      assert.equal(
        Object.keys(tf.engine().registeredVariables).length,
        variables,
        `variables after ${stage}`,
      );
    }),
    params(400),
  );
  seen.report();
});

Deno.test("fuzz: parseBundle() on arbitrary text as model.json is an HttpError", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))), (text) => {
      try {
        parseBundle(new TextEncoder().encode(text), [], LIMITS);
        assert.fail("an arbitrary document parsed as a model");
      } catch (e) {
        assert.ok((e as { status?: number }).status, `not an HttpError: ${e}`);
      }
    }),
    params(1000),
  );
});

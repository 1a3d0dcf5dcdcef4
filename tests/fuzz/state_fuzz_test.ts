import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs";
import { blobOf, engineTensors, setupBackend, testApp } from "../_helpers.ts";
import { backdooredClassifier, makeSet, tinySchedule } from "../purify/synthetic_backdoor.ts";
import { encodeNpy } from "../../src/io/npy.ts";
import { parseBundle } from "../../src/io/model_bundle.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import { parseRoundParams } from "../../src/purify/params.ts";
import { runRound } from "../../src/purify/round.ts";
import { type PurifyState, sealState } from "../../src/purify/state.ts";
import {
  byteOps,
  jsonBytes,
  type JsonOpList,
  jsonOps,
  mutateBytes,
  mutateJson,
  outcomeAsync,
  Outcomes,
  params,
  withinMs,
} from "./_fuzz.ts";

const LIMITS = { maxModelJsonBytes: 1e7, maxWeightBytes: 1e8, maxParams: 1e7, maxLayers: 100 };
const extra = makeSet(96, 0.1, 2);
const roundParams = parseRoundParams({ schedule: tinySchedule(), seed: 3 });

interface Snapshot {
  state: Record<string, unknown>;
  bundle: { modelJson: Uint8Array; weights: { name: string; bytes: Uint8Array }[] };
}

let snapshots: Promise<Snapshot[]> | undefined;

/** The state and model after each of a few short rounds: every phase of the tiny schedule. */
function states(): Promise<Snapshot[]> {
  snapshots ??= (async () => {
    await setupBackend();
    let clf = await backdooredClassifier();
    const out: Snapshot[] = [];
    let state: unknown;
    for (let r = 0; r < 40; r++) {
      const res = await runRound(clf, extra.images, extra.labels, roundParams, state, {
        maxSteps: 30,
        maxMs: 600_000,
      });
      state = JSON.parse(JSON.stringify(res.state));
      const bundle = await clf.save();
      clf.dispose();
      clf = await loadClassifier(parseBundle(bundle.modelJson, bundle.weights, LIMITS));
      out.push({ state: state as Record<string, unknown>, bundle });
      if (res.done) break;
    }
    clf.dispose();
    return out;
  })();
  return snapshots;
}

/** A state mutation, resealed (so it reaches the cross-checks and the round) most of the time. */
const stateEdit = fc.record({
  which: fc.nat(),
  ops: jsonOps,
  reseal: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, {
    weight: 1,
    arbitrary: fc.constant(false),
  }),
});

async function mutated(s: Snapshot, ops: JsonOpList, reseal: boolean) {
  const m = mutateJson(s.state, ops);
  if (!reseal || typeof m !== "object" || m === null || Array.isArray(m)) return m;
  try {
    return await sealState(m as Omit<PurifyState, "checksum">);
  } catch {
    return m;
  }
}

Deno.test("fuzz: runRound() with mutated (and resealed) states finishes or throws an HttpError, no leak", async () => {
  const snaps = await states();
  assert.ok(snaps.length >= 5, `${snaps.length} snapshots`);
  const seen = new Outcomes("runRound(mutated state)");
  const tensors = tf.memory().numTensors;
  await fc.assert(
    fc.asyncProperty(stateEdit, async ({ which, ops, reseal }) => {
      const s = snaps[which % snaps.length];
      const state = await mutated(s, ops, reseal);
      const clf = await loadClassifier(parseBundle(s.bundle.modelJson, s.bundle.weights, LIMITS));
      const got = await withinMs(20_000, "round", () =>
        outcomeAsync(async () => {
          try {
            const r = await runRound(clf, extra.images, extra.labels, roundParams, state, {
              maxSteps: 3,
              maxMs: 5_000,
            });
            // Whatever it was fed, what a round hands back must open again.
            JSON.parse(JSON.stringify(r.state));
          } finally {
            clf.dispose();
          }
        }));
      seen.add(got);
      assert.ok(got === "ok" || [400, 413, 422].includes(got), `status ${got}`);
      assert.equal(tf.memory().numTensors, tensors);
    }),
    params(150),
  );
  seen.report();
});

Deno.test("fuzz: POST /v1/purify/rounds with a mutated state part answers 2xx or 4xx, never 500", async () => {
  const snaps = await states();
  const app = await testApp();
  const images = encodeNpy({
    dtype: "float32",
    shape: extra.images.shape,
    data: extra.images.data,
  });
  const labels = encodeNpy({ dtype: "int32", shape: [extra.labels.length], data: extra.labels });
  const seen = new Outcomes("POST /v1/purify/rounds (mutated state)");
  const tensors = engineTensors(app);
  await fc.assert(
    fc.asyncProperty(
      stateEdit,
      fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: byteOps }),
      async ({ which, ops, reseal }, raw) => {
        const s = snaps[which % snaps.length];
        let stateBytes = jsonBytes(await mutated(s, ops, reseal));
        if (raw) stateBytes = mutateBytes(stateBytes, raw);
        const f = new FormData();
        f.append("model", blobOf(s.bundle.modelJson), "model.json");
        for (const w of s.bundle.weights) f.append("weights", blobOf(w.bytes), w.name);
        f.append("images", blobOf(images), "x.npy");
        f.append("labels", blobOf(labels), "y.npy");
        f.append("params", JSON.stringify({ max_steps: 2 }));
        f.append("state", blobOf(stateBytes), "state.json");
        const res = await app.request("/v1/purify/rounds", { method: "POST", body: f });
        const text = await res.text();
        seen.add(res.status);
        assert.ok(res.status < 500, `${res.status}: ${text.slice(0, 300)}`);
        assert.equal(engineTensors(app), tensors, "the engine holds no new tensor");
      },
    ),
    params(80),
  );
  seen.report();
});

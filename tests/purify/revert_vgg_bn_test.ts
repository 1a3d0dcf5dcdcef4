/**
 * A reverting stage (a probe) in `train_mode: train` on a model with batch norm: training moves
 * the batch norms' moving statistics (tfjs updates them inside apply(training: true)), so the
 * revert must put those back as well as the trainable weights — within one round, and across
 * rounds, where the statistics to restore travel in the state (`reference_fixed`).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BundleLimits, parseBundle, saveBundle } from "../../src/io/model_bundle.ts";
import { buildVggBn, SMALL_VGG } from "../../src/lab/vgg_bn.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import { parseRoundParams } from "../../src/purify/params.ts";
import { runRound } from "../../src/purify/round.ts";
import { setupBackend } from "../_helpers.ts";

const LIMITS: BundleLimits = {
  maxModelJsonBytes: 1e7,
  maxWeightBytes: 1e8,
  maxParams: 1e7,
  maxLayers: 100,
};
const N = 48, K = 6;

async function vggClassifier() {
  const built = buildVggBn([16, 16, 3], K, 9, SMALL_VGG);
  const bundle = await saveBundle(built);
  built.dispose();
  return await loadClassifier(parseBundle(bundle.modelJson, bundle.weights, LIMITS));
}

/** Random images labelled by the model itself, half of them relabelled to class 0. */
async function extraSet(clf: Awaited<ReturnType<typeof vggClassifier>>) {
  let s = 12345;
  const data = Float32Array.from({ length: N * 16 * 16 * 3 }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  });
  const shape: [number, number, number, number] = [N, 16, 16, 3];
  const pred = tf.tidy(() => clf.logits(tf.tensor4d(data, shape)).argMax(1));
  const labels = Int32Array.from(await pred.data());
  pred.dispose();
  labels.fill(0, 0, N / 2);
  return { images: { data, shape }, labels };
}

const weightsOf = async (m: tf.LayersModel) =>
  await Promise.all(m.weights.map(async (w) => Array.from(await w.read().data())));

const schedule = (mode: "train" | "inference") => ({
  train_mode: mode,
  suspect: { rule: "none" },
  initial_clean: { rule: "random", fraction: 0.5 },
  stages: [{
    kind: "train",
    name: "probe",
    steps: 4,
    batch_size: 16,
    lr: 0.05,
    revert: true,
    losses: { clean: 1 },
  }],
});

for (const maxSteps of [1000, 2]) {
  Deno.test(`a reverted train-mode stage leaves a batch-norm model as it found it (rounds of ${maxSteps} steps)`, async () => {
    await setupBackend();
    const clf = await vggClassifier();
    const { images, labels } = await extraSet(clf);
    const baseline = tf.memory().numTensors;
    try {
      const before = await weightsOf(clf.model);
      let state: unknown, rounds = 0, sawFixed = false;
      const params = parseRoundParams({ schedule: schedule("train"), seed: 3 });
      for (;;) {
        const r = await runRound(clf, images, labels, state ? {} as never : params, state, {
          maxSteps,
          maxMs: 600_000,
        });
        rounds++;
        const events = r.report.events as { event: string }[];
        state = JSON.parse(JSON.stringify(r.state));
        sawFixed ||= typeof (state as { reference_fixed?: unknown }).reference_fixed === "string";
        if (r.done) {
          assert.ok(events.some((e) => e.event === "revert") || rounds > 1);
          break;
        }
        assert.ok(rounds < 50, "the round loop ends");
      }
      if (maxSteps === 2) {
        assert.ok(rounds > 2, "the stage spans rounds");
        assert.ok(sawFixed, "the statistics to restore travel in the state");
      }
      assert.equal((state as { reference_fixed?: unknown }).reference_fixed, undefined);
      assert.deepEqual(await weightsOf(clf.model), before);
    } finally {
      assert.equal(tf.memory().numTensors, baseline);
      clf.dispose();
    }
  });
}

Deno.test("train-mode steps do move the statistics (the check above can fail), inference-mode steps do not", async () => {
  await setupBackend();
  for (const mode of ["train", "inference"] as const) {
    const clf = await vggClassifier();
    const { images, labels } = await extraSet(clf);
    try {
      const stats = async () =>
        await Promise.all(
          clf.model.nonTrainableWeights.map(async (w) => Array.from(await w.read().data())),
        );
      const before = await stats();
      assert.equal(before.length, 12);
      const s = schedule(mode);
      s.stages[0].revert = false;
      await runRound(clf, images, labels, parseRoundParams({ schedule: s, seed: 3 }), undefined, {
        maxSteps: 1000,
        maxMs: 600_000,
      });
      const after = await stats();
      if (mode === "train") assert.notDeepEqual(after, before);
      else assert.deepEqual(after, before);
    } finally {
      clf.dispose();
    }
  }
});

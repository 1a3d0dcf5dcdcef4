/**
 * A tiny synthetic backdoor for fast tests: 10×10 grey images of four classes (a bright bar,
 * horizontal, vertical, diagonal or anti-diagonal, at a random offset inside rows and columns
 * 2-9, on a noisy dark background), a 2×2 checkerboard patch in the free top-left corner that
 * sends images to class 0, and a small conv net trained on a 10%-poisoned set for a second or two.
 * Deterministic on a given backend (seeded data, seeded initializers, unshuffled training).
 */
import * as tf from "@tensorflow/tfjs";
import type { ImageBatch } from "../../src/io/images.ts";
import { parseBundle, saveBundle } from "../../src/io/model_bundle.ts";
import { loadClassifier, type LoadedClassifier } from "../../src/model/load_classifier.ts";
import { CounterRng } from "../../src/random/rng.ts";
import { setupBackend } from "../_helpers.ts";

export const SIZE = 10;
export const CLASSES = 4;
export const TARGET = 0;
const LIMITS = { maxModelJsonBytes: 1e7, maxWeightBytes: 1e8, maxParams: 1e7, maxLayers: 100 };

export interface SyntheticSet {
  images: ImageBatch;
  labels: Int32Array;
  /** 1 = poisoned (patched and relabelled to TARGET). */
  poisoned: Uint8Array;
  /** The true classes (before relabelling). */
  original: Int32Array;
}

/** Stamps the 2×2 checkerboard trigger in the top-left corner of image `i`. */
export function stampPatch(data: Float32Array, i: number): void {
  const o = i * SIZE * SIZE;
  data[o] = 1;
  data[o + 1] = 0;
  data[o + SIZE] = 0;
  data[o + SIZE + 1] = 1;
}

/** `n` images, a `rate` share of them (of classes other than TARGET) poisoned. */
export function makeSet(n: number, rate: number, seed: number): SyntheticSet {
  const rng = new CounterRng(seed, 99);
  const u = () => rng.uint32() / 4294967296;
  const data = new Float32Array(n * SIZE * SIZE);
  const labels = new Int32Array(n);
  const original = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % CLASSES;
    labels[i] = original[i] = c;
    const o = i * SIZE * SIZE;
    for (let p = 0; p < SIZE * SIZE; p++) data[o + p] = 0.3 * u();
    const at = 3 + rng.int(6);
    const shift = rng.int(3) - 1;
    for (let t = 2; t < SIZE; t++) {
      const [r, col] = c === 0
        ? [at, t]
        : c === 1
        ? [t, at]
        : c === 2
        ? [t, Math.min(SIZE - 1, Math.max(2, t + shift))]
        : [t, Math.min(SIZE - 1, Math.max(2, SIZE + 1 - t + shift))];
      data[o + r * SIZE + col] = 0.7 + 0.3 * u();
    }
  }
  const poisoned = new Uint8Array(n);
  const want = Math.round(rate * n);
  for (let i = 0, done = 0; i < n && done < want; i++) {
    if (labels[i] === TARGET || rng.int(3) !== 0) continue;
    stampPatch(data, i);
    labels[i] = TARGET;
    poisoned[i] = 1;
    done++;
  }
  return { images: { shape: [n, SIZE, SIZE, 1], data }, labels, poisoned, original };
}

/** Every non-target image of `set` with the trigger, and their true classes. */
export function triggered(set: SyntheticSet): { images: ImageBatch; source: Int32Array } {
  const keep: number[] = [];
  for (let i = 0; i < set.labels.length; i++) if (set.original[i] !== TARGET) keep.push(i);
  const per = SIZE * SIZE;
  const data = new Float32Array(keep.length * per);
  keep.forEach((k, j) => {
    data.set(set.images.data.subarray(k * per, (k + 1) * per), j * per);
    stampPatch(data, j);
  });
  return {
    images: { shape: [keep.length, SIZE, SIZE, 1], data },
    source: Int32Array.from(keep, (k) => set.original[k]),
  };
}

type Bundle = { modelJson: Uint8Array; weights: { name: string; bytes: Uint8Array }[] };
const bundles = new Map<number, Promise<Bundle>>();

/** The bundle of a model trained on a `rate`-poisoned set (default 10%), once per process. */
export function trainedBundle(rate = 0.1): Promise<Bundle> {
  if (!bundles.has(rate)) bundles.set(rate, train(rate));
  return bundles.get(rate)!;
}

function train(rate: number): Promise<Bundle> {
  return (async () => {
    await setupBackend();
    const train = makeSet(480, rate, 1);
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [SIZE, SIZE, 1],
          filters: 8,
          kernelSize: 3,
          activation: "relu",
          kernelInitializer: init(1),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: CLASSES, activation: "softmax", kernelInitializer: init(2) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.02), loss: "sparseCategoricalCrossentropy" });
    const x = tf.tensor4d(train.images.data, train.images.shape);
    const y = tf.tensor1d(train.labels, "float32");
    await model.fit(x, y, { epochs: 40, batchSize: 48, shuffle: false, verbose: 0 });
    tf.dispose([x, y]);
    const saved = await saveBundle(model);
    model.optimizer.dispose();
    model.dispose();
    return saved;
  })();
}

/** A fresh copy of the backdoored classifier (the caller disposes it). */
export async function backdooredClassifier(): Promise<LoadedClassifier> {
  const b = await trainedBundle();
  return loadClassifier(parseBundle(b.modelJson, b.weights, LIMITS));
}

/** The same architecture trained on unpoisoned data: no backdoor (the caller disposes it). */
export async function cleanClassifier(): Promise<LoadedClassifier> {
  const b = await trainedBundle(0);
  return loadClassifier(parseBundle(b.modelJson, b.weights, LIMITS));
}

/** A classifier reloaded from what `clf.save()` wrote: the round trip a client makes. */
export async function roundTrip(clf: LoadedClassifier): Promise<LoadedClassifier> {
  const b = await clf.save();
  return loadClassifier(parseBundle(b.modelJson, b.weights, LIMITS));
}

/** All trainable weights, flattened. */
export async function weightsOf(clf: LoadedClassifier): Promise<Float32Array> {
  const parts = await Promise.all(clf.model.trainableWeights.map((w) => w.read().data()));
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Float32Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p as Float32Array, o);
    o += p.length;
  }
  return out;
}

/** A short schedule for tests: every stage kind, a few steps each. */
export function tinySchedule() {
  const pgd = { eps: 0.05, steps: 3 };
  const rescore = { clean: { rule: "split" }, flag: { rule: "split", max_fraction: 0.3 } };
  return {
    name: "tiny",
    score_batch_size: 64,
    suspect: {
      evidence: { landing_per_class: 8, patch_steps: 20, additive_steps: 10, batch_size: 32 },
    },
    stages: [
      { kind: "reconstruct", name: "reconstruct", steps: 200, batch_size: 32, l1_weight: 10 },
      {
        kind: "train",
        name: "probe",
        steps: 3,
        probe_lrs: [0.003, 0.01, 0.03],
        batch_size: 32,
        losses: { clean: 1, adversarial: 1, trigger: 1 },
        pgd,
        revert: true,
        rescore: { ...rescore, score: "suspect_drop" },
      },
      {
        kind: "train",
        name: "purge",
        epochs: 3,
        lr: 0.005,
        batch_size: 32,
        losses: { clean: 1, adversarial: 1, unlearn: 0.5 },
        pgd,
        unlearn: { batch_size: 8 },
      },
      {
        kind: "train",
        name: "robust",
        steps: 6,
        lr: 0.005,
        batch_size: 32,
        losses: { clean: 1, adversarial: 1, unlearn: 0.5, mean_teacher: 1 },
        pgd,
        unlearn: { batch_size: 8 },
      },
    ],
  };
}

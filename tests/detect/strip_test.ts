import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { auroc, flagMetrics } from "../../src/metrics/detection.ts";
import { strip } from "../../src/detect/strip.ts";
import type { ImageBatch } from "../../src/io/images.ts";
import { Rng } from "../../src/random/rng.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { wrap } from "./_fixtures.ts";

const S = 8;

/**
 * A backdoored linear classifier on 8×8 grey images: class k (0-2) is "rows 2k and 2k+1 bright",
 * and a 2×2 patch in the bottom-right corner (rows 6-7, which clean images leave dark) forces
 * class 0 whatever else the image holds.
 */
function backdooredModel() {
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [S, S, 1] }));
  model.add(tf.layers.dense({ units: 3, name: "out" }));
  const w = new Float32Array(S * S * 3);
  for (let r = 0; r < 6; r++) {
    for (let c = 0; c < S; c++) w[(r * S + c) * 3 + Math.floor(r / 2)] = 1;
  }
  for (const r of [6, 7]) for (const c of [6, 7]) w[(r * S + c) * 3] = 20;
  tf.tidy(() => model.getLayer("out").setWeights([tf.tensor2d(w, [S * S, 3]), tf.zeros([3])]));
  return wrap(model, [S, S, 1], 3);
}

/** 40 images per class; the first 12 of each class 1-2 triggered and relabelled 0. */
function dataset(): { images: ImageBatch; labels: Int32Array; isPoison: Uint8Array } {
  const rng = new Rng(2);
  const n = 120;
  const data = new Float32Array(n * S * S);
  const labels = new Int32Array(n);
  const isPoison = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(i / 40);
    const poisoned = k > 0 && i % 40 < 12;
    labels[i] = poisoned ? 0 : k;
    isPoison[i] = poisoned ? 1 : 0;
    for (let r = 0; r < S; r++) {
      for (let c = 0; c < S; c++) {
        let v = 0.05 * rng.next() + (Math.floor(r / 2) === k && r < 6 ? 0.8 : 0);
        if (poisoned && r >= 6 && c >= 6) v = 1;
        data[i * S * S + r * S + c] = v;
      }
    }
  }
  return { images: { shape: [n, S, S, 1], data }, labels, isPoison };
}

Deno.test("strip() gives triggered images low entropy (high scores) and flags them", async () => {
  await setupBackend();
  const clf = backdooredModel();
  const { images, labels, isPoison } = dataset();
  try {
    const res = await assertNoLeak(() =>
      strip(clf, images, labels, { blends: 8, seed: 1 }, { batchSize: 64 })
    );
    assert.ok(res.scores.every((s) => s <= 1e-6), "scores are minus an entropy");
    const a = auroc(res.scores, isPoison)!;
    assert.ok(a > 0.95, `AUROC ${a}`);
    const m = flagMetrics(res.flags, isPoison);
    assert.ok(m.recall > 0.9, JSON.stringify(m));
    assert.equal(res.suspectedTarget, 0);
    assert.equal(res.threshold.rule, "fpr");
  } finally {
    clf.dispose();
  }
});

Deno.test("strip() gives the same scores whatever the batch size", async () => {
  await setupBackend();
  const clf = backdooredModel();
  const { images, labels } = dataset();
  try {
    const a = await strip(clf, images, labels, { blends: 4, seed: 7 }, { batchSize: 13 });
    const b = await strip(clf, images, labels, { blends: 4, seed: 7 }, { batchSize: 480 });
    for (let i = 0; i < a.scores.length; i++) assert.ok(Math.abs(a.scores[i] - b.scores[i]) < 1e-5);
  } finally {
    clf.dispose();
  }
});

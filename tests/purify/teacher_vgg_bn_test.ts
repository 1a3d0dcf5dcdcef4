/**
 * The mean teacher on a model with batch norm (the lab's VGG-BN): in `train_mode: train` the
 * teacher's forward pass runs the batch norms in training mode, which in tfjs also updates their
 * moving statistics. Those belong to the student (the model the round returns); the teacher's
 * pass must leave them as it found them, as it leaves the trainable weights.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { parseBundle, saveBundle } from "../../src/io/model_bundle.ts";
import { buildVggBn, SMALL_VGG } from "../../src/lab/vgg_bn.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import { MeanTeacher } from "../../src/purify/teacher.ts";
import { trainableVariables } from "../../src/purify/weights.ts";
import { setupBackend } from "../_helpers.ts";

const LIMITS = { maxModelJsonBytes: 1e7, maxWeightBytes: 1e8, maxParams: 1e7, maxLayers: 100 };

async function allWeights(m: tf.LayersModel): Promise<Float32Array[]> {
  return await Promise.all(m.weights.map(async (w) => await w.read().data() as Float32Array));
}

for (const training of [false, true]) {
  Deno.test(`MeanTeacher.probs(training: ${training}) on a VGG-BN leaves every student weight, moving statistics included`, async () => {
    await setupBackend();
    const baseline = tf.memory().numTensors;
    const built = buildVggBn([16, 16, 3], 6, 4, SMALL_VGG);
    const bundle = await saveBundle(built, { outputActivation: "softmax" });
    built.dispose();
    const clf = await loadClassifier(parseBundle(bundle.modelJson, bundle.weights, LIMITS));
    try {
      const vars = trainableVariables(clf);
      const teacher = MeanTeacher.of(vars);
      // The student moves away from the teacher, as after a few steps.
      tf.tidy(() => vars.forEach((v) => v.assign(tf.add(v, 0.05))));
      const student = await allWeights(clf.model);
      const x = tf.randomUniform([8, 16, 16, 3], 0, 1, "float32", 2) as tf.Tensor4D;
      const p = teacher.probs(clf, vars, x, training);
      assert.deepEqual(p.shape, [8, 6]);
      const rowSums = tf.sum(p, 1);
      const sums = await rowSums.data();
      rowSums.dispose();
      assert.ok(Array.from(sums).every((s) => Math.abs(s - 1) < 1e-5), "softmax rows");
      assert.deepEqual(await allWeights(clf.model), student, "the student as it was");
      tf.dispose([p, x]);
      teacher.dispose();
      // A training-mode pass of the student itself does move them (so the check above can fail).
      tf.tidy(() => {
        clf.logits(tf.randomUniform([8, 16, 16, 3]) as tf.Tensor4D, true);
      });
      assert.notDeepEqual(await allWeights(clf.model), student);
    } finally {
      clf.dispose();
    }
    assert.equal(tf.memory().numTensors, baseline);
  });
}

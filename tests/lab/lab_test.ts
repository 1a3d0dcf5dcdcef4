import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../../src/errors.ts";
import { parseNpy } from "../../src/io/npy.ts";
import { labFiles, type LabOptionsInput, runLab, writeLabOutputs } from "../../src/lab/lab.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

/** Small enough to train in about a second on wasm (several on the pure-JS cpu backend). */
const TINY: LabOptionsInput = {
  dataset: "synthetic",
  syntheticSize: 12,
  trainSize: 800,
  poisonRate: 0.2,
  extraSize: 200,
  testSize: 300,
  epochs: 6,
  learningRate: 5e-3,
  seed: 1,
};

Deno.test("runLab() on tiny synthetic data backdoors a model: high ASR, good clean accuracy, no leak", async () => {
  await setupBackend();
  const r = await assertNoLeak(() => runLab(TINY));
  const rep = r.report;
  assert.ok(rep.attackSuccessRate > 0.8, `ASR ${rep.attackSuccessRate}`);
  assert.ok(rep.cleanAccuracy > 0.8, `clean accuracy ${rep.cleanAccuracy}`);
  assert.equal(rep.counts.trainPoisoned, 160);
  assert.equal(rep.counts.extraPoisoned, 20);
  assert.equal(r.extra.isPoison.reduce((a, b) => a + b, 0), 20);
  assert.ok(r.testBackdoor.y.every((y) => y === 0));
  assert.equal(rep.history.length, 6);
  assert.deepEqual(r.trigger, { ...r.trigger, type: "badnets", seed: 1 });

  const doc = JSON.parse(new TextDecoder().decode(r.model.modelJson));
  assert.deepEqual(doc.weightsManifest[0].paths, ["weights.bin"]);
  const layers = doc.modelTopology.config.layers;
  assert.equal(layers[layers.length - 1].config.activation, "softmax");

  // The written files load back as what runLab returned.
  const dir = await Deno.makeTempDir();
  try {
    const paths = await writeLabOutputs(r, dir);
    const names = paths.map((p) => p.slice(dir.length + 1)).sort();
    assert.deepEqual(names, [
      "extra_clean_y.npy",
      "extra_is_poison.npy",
      "extra_x.npy",
      "extra_y.npy",
      "lab.json",
      "model.json",
      "test_bd_x.npy",
      "test_bd_y.npy",
      "test_x.npy",
      "test_y.npy",
      "trigger.json",
      "weights.bin",
    ]);
    const ex = parseNpy(await Deno.readFile(`${dir}/extra_x.npy`));
    assert.equal(ex.dtype, "uint8");
    assert.deepEqual(ex.shape, [200, 12, 12, 1]);
    const ey = parseNpy(await Deno.readFile(`${dir}/extra_y.npy`));
    assert.equal(ey.dtype, "int32");
    assert.deepEqual(ey.data, r.extra.y);
    const bd = parseNpy(await Deno.readFile(`${dir}/test_bd_x.npy`));
    assert.equal(bd.shape[0], r.testBackdoor.y.length);
    const trigger = JSON.parse(await Deno.readTextFile(`${dir}/trigger.json`));
    assert.deepEqual(trigger, r.trigger);
    const lab = JSON.parse(await Deno.readTextFile(`${dir}/lab.json`));
    assert.equal(lab.attackSuccessRate, rep.attackSuccessRate);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runLab() with the same seed gives byte-identical outputs", async () => {
  await setupBackend();
  const opts = { ...TINY, epochs: 1, attack: "blend" as const, trainSize: 200 };
  const a = labFiles(await runLab(opts));
  const b = labFiles(await runLab(opts));
  for (const [name, bytes] of a) {
    if (name === "lab.json") continue; // timings differ
    assert.deepEqual(b.get(name), bytes, name);
  }
  const c = labFiles(await runLab({ ...opts, seed: 2 }));
  assert.notDeepEqual(c.get("weights.bin"), a.get("weights.bin"));
});

Deno.test("runLab() rejects bad options with a ValidationError naming them", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  for (
    const bad of [
      { poisonRate: 2 },
      { dataset: "cifar" },
      { attack: "trojannn" },
      { target: 7, dataset: "synthetic", syntheticClasses: 4 },
      { unknown: 1 },
      { trigger: { type: "blend", alpha: 0 } },
    ]
  ) {
    await assert.rejects(
      () => runLab({ ...TINY, ...bad } as LabOptionsInput),
      ValidationError,
      JSON.stringify(bad),
    );
  }
  assert.equal(tf.memory().numTensors, before);
});

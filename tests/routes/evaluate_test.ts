import assert from "node:assert/strict";
import { blobOf, engineTensors, errorCode, testApp } from "../_helpers.ts";
import { encodeNpy } from "../../src/io/npy.ts";
import { accuracy } from "../../src/metrics/accuracy.ts";
import { attackSuccessRate, triggerSuccessRate } from "../../src/metrics/attack_success_rate.ts";
import { robustAccuracy } from "../../src/metrics/robust_accuracy.ts";
import { parseTriggerSpec } from "../../src/triggers/trigger.ts";
import {
  backdooredClassifier,
  makeSet,
  TARGET,
  trainedBundle,
  triggered,
} from "../purify/synthetic_backdoor.ts";

const test = makeSet(200, 0, 3);
const trig = triggered(test);
const npyF32 = (b: { shape: number[]; data: Float32Array }) =>
  encodeNpy({ dtype: "float32", shape: b.shape, data: b.data });
const npyI32 = (a: Int32Array) => encodeNpy({ dtype: "int32", shape: [a.length], data: a });

async function evalForm(
  params: unknown,
  extra: (f: FormData) => void = () => {},
): Promise<FormData> {
  const model = await trainedBundle();
  const f = new FormData();
  f.append("model", blobOf(model.modelJson), "model.json");
  for (const w of model.weights) f.append("weights", blobOf(w.bytes), w.name);
  f.append("images", blobOf(npyF32(test.images)), "test_x.npy");
  f.append("labels", blobOf(npyI32(test.labels)), "test_y.npy");
  if (params !== undefined) f.append("params", JSON.stringify(params));
  extra(f);
  return f;
}

Deno.test("POST /v1/evaluate reports the clean accuracy, ASR and robust accuracy computed in-process", async () => {
  const app = await testApp();
  await trainedBundle();
  const before = engineTensors(app);
  const attack = { eps: 0.05, steps: 5, seed: 1, max_images: 64 };
  const res = await app.request("/v1/evaluate", {
    method: "POST",
    body: await evalForm({ backdoor: { target: TARGET }, attack }, (f) => {
      f.append("backdoor_images", blobOf(npyF32(trig.images)), "test_bd_x.npy");
      f.append("backdoor_source_labels", blobOf(npyI32(trig.source)), "src.npy");
    }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  const clf = await backdooredClassifier();
  try {
    const acc = await accuracy(clf, test.images, test.labels);
    const asr = await attackSuccessRate(clf, trig.images, TARGET, { sourceLabels: trig.source });
    const n = attack.max_images;
    const [, h, w, c] = test.images.shape;
    const rob = await robustAccuracy(
      clf,
      { shape: [n, h, w, c], data: test.images.data.subarray(0, n * h * w * c) },
      test.labels.subarray(0, n),
      { eps: attack.eps, steps: attack.steps, seed: attack.seed },
    );
    assert.equal(body.clean_accuracy, acc.accuracy);
    assert.deepEqual(body.clean.per_class, acc.per_class);
    assert.equal(body.attack_success_rate, asr.asr);
    assert.ok(body.attack_success_rate > 0.9, "the synthetic backdoor works");
    assert.equal(body.backdoor.per_class[TARGET].value, null, "target class left out");
    // The floor: clean images of other classes the model already sends to the target.
    const nonTarget = Array.from(test.labels).filter((y) => y !== TARGET).length;
    assert.equal(typeof body.clean_target_rate, "number");
    assert.ok(body.clean_target_rate >= 0 && body.clean_target_rate <= 1);
    const count = body.clean_target_rate * nonTarget;
    assert.ok(Math.abs(count - Math.round(count)) < 1e-9, "a count over the non-target images");
    assert.ok(body.clean_target_rate < body.attack_success_rate);
    assert.equal(body.robust_accuracy, rob.robust_accuracy);
    assert.equal(body.robust.total, n);
    assert.ok(body.robust_accuracy <= body.clean_accuracy + 0.05);
    assert.equal(body.robust.attack.steps, 5);
  } finally {
    clf.dispose();
  }
  assert.equal(engineTensors(app), before, "no tensor left behind");
});

Deno.test("POST /v1/evaluate measures ASR from per-image backdoor labels and from a trigger spec", async () => {
  const app = await testApp();
  // Per-image targets (the lab's test_bd_y.npy): all-to-one here, so one shared target.
  const targets = new Int32Array(trig.source.length).fill(TARGET);
  const res = await app.request("/v1/evaluate", {
    method: "POST",
    body: await evalForm({ backdoor: {} }, (f) => {
      f.append("backdoor_images", blobOf(npyF32(trig.images)), "test_bd_x.npy");
      f.append("backdoor_labels", blobOf(npyI32(targets)), "test_bd_y.npy");
    }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.backdoor.target, TARGET);
  assert.equal(body.backdoor.total, trig.source.length);
  assert.ok(body.attack_success_rate > 0.9);
  assert.equal(body.robust_accuracy, undefined, "no attack asked, none run");

  const spec = parseTriggerSpec({ type: "badnets", size: 2, position: "top-left" });
  const viaSpec = await app.request("/v1/evaluate", {
    method: "POST",
    body: await evalForm({ backdoor: { target: TARGET, trigger: spec } }),
  });
  assert.equal(viaSpec.status, 200, await viaSpec.clone().text());
  const clf = await backdooredClassifier();
  try {
    const want = await triggerSuccessRate(clf, test.images, test.labels, spec, TARGET);
    assert.equal((await viaSpec.json()).attack_success_rate, want.asr);
  } finally {
    clf.dispose();
  }
});

Deno.test("POST /v1/evaluate answers bad inputs with clear 4xx errors", async () => {
  const app = await testApp({ MAX_ATTACK_COST: "1000" });
  await trainedBundle();
  const before = engineTensors(app);
  const bdImages = (f: FormData) =>
    f.append("backdoor_images", blobOf(npyF32(trig.images)), "bd.npy");
  const cases: [string, FormData, number, string?][] = [
    ["no labels", await evalForm({}, (f) => f.delete("labels")), 400, "missing_part"],
    [
      "labels count mismatch",
      await evalForm({}, (f) => f.set("labels", JSON.stringify([0, 1, 2]))),
      422,
      "shape_mismatch",
    ],
    ["unknown param", await evalForm({ metric: "f1" }), 400, "invalid_params"],
    ["attack eps 0", await evalForm({ attack: { eps: 0 } }), 400, "invalid_params"],
    ["attack eps above 1", await evalForm({ attack: { eps: 2 } }), 400, "invalid_params"],
    ["attack steps 0", await evalForm({ attack: { steps: 0 } }), 400, "invalid_params"],
    [
      "robust accuracy over budget",
      await evalForm({ attack: { steps: 20 } }),
      422,
      "cost_exceeded",
    ],
    ["backdoor images without params.backdoor", await evalForm({}, bdImages), 422],
    ["backdoor without images or trigger", await evalForm({ backdoor: { target: 0 } }), 422],
    ["backdoor images without a target", await evalForm({ backdoor: {} }, bdImages), 422],
    ["target not a class", await evalForm({ backdoor: { target: 7 } }, bdImages), 422],
    [
      "trigger without a target",
      await evalForm({ backdoor: { trigger: { type: "badnets" } } }),
      422,
    ],
    [
      "trigger and images both",
      await evalForm({ backdoor: { target: 0, trigger: { type: "badnets" } } }, bdImages),
      422,
    ],
    [
      "unknown trigger type",
      await evalForm({ backdoor: { target: 0, trigger: { type: "sticker" } } }),
      400,
      "invalid_params",
    ],
    [
      "backdoor labels count mismatch",
      await evalForm({ backdoor: {} }, (f) => {
        bdImages(f);
        f.append("backdoor_labels", JSON.stringify([0, 0]));
      }),
      422,
      "shape_mismatch",
    ],
    [
      "backdoor labels contradict the target",
      await evalForm({ backdoor: { target: 1 } }, (f) => {
        bdImages(f);
        f.append("backdoor_labels", blobOf(npyI32(new Int32Array(trig.source.length))), "y.npy");
      }),
      422,
    ],
    [
      "backdoor images of another size",
      await evalForm({ backdoor: { target: 0 } }, (f) =>
        f.append(
          "backdoor_images",
          blobOf(npyF32({ shape: [2, 5, 5, 1], data: new Float32Array(50) })),
          "bd.npy",
        )),
      422,
      "shape_mismatch",
    ],
    ["params not JSON", await evalForm(undefined, (f) => f.append("params", "{")), 400],
  ];
  for (const [what, body, status, code] of cases) {
    const res = await app.request("/v1/evaluate", { method: "POST", body });
    const got = await errorCode(res, status).catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    if (code) assert.equal(got, code, what);
  }
  assert.equal(engineTensors(app), before, "no tensor left behind by refused requests");
});

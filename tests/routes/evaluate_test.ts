import assert from "node:assert/strict";
import {
  blobOf,
  engineTensors,
  errorCode,
  fixtureBytes,
  fixtureForm,
  testApp,
} from "../_helpers.ts";
import { scaledLastLayer } from "../attacks/_fixtures.ts";
import { EvaluateReplySchema } from "../../src/metrics/evaluate_reply.ts";
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
      "unknown ensemble version",
      await evalForm({ attack: { attack: "autoattack", version: "slow" } }),
      400,
      "invalid_params",
    ],
    [
      "unknown ensemble member",
      await evalForm({ attack: { attack: "autoattack", members: ["fab-t"] } }),
      400,
      "invalid_params",
    ],
    [
      "PGD steps on the ensemble",
      await evalForm({ attack: { attack: "autoattack", steps: 20 } }),
      400,
      "invalid_params",
    ],
    [
      "ensemble over budget",
      await evalForm({ attack: { attack: "autoattack", version: "fast", max_images: 1 } }),
      422,
      "cost_exceeded",
    ],
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

/** The tiny fixture's form for /v1/evaluate, its weights scaled by `scale` in the last layer. */
function tinyEvalForm(params: unknown, scale?: number): FormData {
  const f = fixtureForm({ labels: true, params });
  if (scale !== undefined) {
    const w = scaledLastLayer(fixtureBytes("model.json"), fixtureBytes("weights.bin"), scale);
    f.set("weights", blobOf(w), "weights.bin");
  }
  return f;
}

Deno.test("POST /v1/evaluate runs the ensemble: robust accuracy after each member and the worst case", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const attack = { attack: "autoattack", version: "fast", eps: 0.04, max_images: 16 };
  const res = await app.request("/v1/evaluate", {
    method: "POST",
    body: tinyEvalForm({ attack }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = EvaluateReplySchema.parse(await res.json());
  assert.equal(typeof body.time_ms, "number");
  assert.equal("ms" in body, false, "the duration is time_ms, as on every other endpoint");
  const r = body.robust!;
  assert.equal(r.total, 16);
  assert.deepEqual(r.members!.map((m) => m.member), ["apgd-ce", "apgd-t", "square"]);
  for (const m of r.members!) assert.ok(r.worst_case_robust_accuracy! <= m.robust_accuracy);
  assert.equal(body.robust_accuracy, r.worst_case_robust_accuracy);
  assert.equal(body.worst_case_robust_accuracy, r.worst_case_robust_accuracy);
  assert.ok(body.robust_accuracy! < body.clean_accuracy!);
  assert.equal(body.gradient_masking_suspected, false);
  assert.deepEqual(r.attack, {
    name: "autoattack",
    norm: "linf",
    eps: 0.04,
    version: "fast",
    members: ["apgd-ce", "apgd-t", "square"],
  });
  assert.equal(engineTensors(app), before);
});

Deno.test("POST /v1/evaluate warns of gradient masking on a model whose logits are scaled by 1e4", async () => {
  const app = await testApp();
  const attack = { eps: 0.1, max_images: 32 };
  const ask = async (scale?: number) => {
    const res = await app.request("/v1/evaluate", {
      method: "POST",
      body: tinyEvalForm({ attack }, scale),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return EvaluateReplySchema.parse(await res.json());
  };
  const plain = await ask();
  const masked = await ask(1e4);
  // Same predictions, so the same clean accuracy; PGD-20 (CE) is blind on the masked model.
  assert.equal(masked.clean_accuracy, plain.clean_accuracy);
  assert.ok(masked.robust_accuracy! > plain.robust_accuracy! + 0.5, "PGD fooled by masking");
  assert.equal(plain.gradient_masking_suspected, false);
  assert.equal(masked.gradient_masking_suspected, true);
  const check = masked.robust!.gradient_masking;
  assert.ok(check.figures.black_box_only! > 8, JSON.stringify(check.figures));
  assert.ok(masked.worst_case_robust_accuracy! < masked.robust_accuracy! - 0.25);
  assert.match(check.reasons.join(" "), /black-box attack broke/);
});

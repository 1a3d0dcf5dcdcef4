import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  BATCH_MAXIMA,
  batchDefaultText,
  type BatchKind,
  CPU_BATCH_DEFAULTS,
  defaultBatchSize,
  followsBackend,
  resolveBatchSize,
  WEBGPU_BATCH_DEFAULTS,
} from "../../src/model/batch_defaults.ts";
import {
  type ActivationBudget,
  budgetOf,
  DEFAULT_MAX_ACTIVATION_BYTES,
  maxBatchFor,
  planActivations,
} from "../../src/io/activation_budget.ts";
import { buildCnn } from "../../src/lab/train.ts";
import { buildVggBn } from "../../src/lab/vgg_bn.ts";
import { parseBundle } from "../../src/io/model_bundle.ts";
import { parseNpy } from "../../src/io/npy.ts";
import type { ImageBatch } from "../../src/io/images.ts";
import { loadClassifier, type LoadedClassifier } from "../../src/model/load_classifier.ts";
import { AttackParamsSchema } from "../../src/attacks/options.ts";
import { runAttack } from "../../src/attacks/run.ts";
import { EvaluateParamsSchema } from "../../src/metrics/evaluate_options.ts";
import { runEvaluate } from "../../src/metrics/run_evaluate.ts";
import { DetectParamsSchema } from "../../src/detect/options.ts";
import { runDetect } from "../../src/detect/run.ts";
import { LimitExceededError } from "../../src/errors.ts";
import { activeBackend, type BackendName } from "../../src/tensor/backend.ts";
import { z } from "zod";
import {
  assertNoLeak,
  engineTensors,
  errorCode,
  fixtureBytes,
  fixtureForm,
  setupBackend,
  testApp,
} from "../_helpers.ts";

const KINDS = ["attack", "evaluate", "detect", "pud_detect"] as const;
/** The kinds whose default follows the backend (pud's is an SGD mini-batch). */
const GPU_KINDS = ["attack", "evaluate", "detect"] as const;

function budget(bytesPerSample: number, maxBytes: number, backward = true): ActivationBudget {
  return { bytesPerSample, largestTensorValues: 1000, maxBytes, backward };
}

Deno.test("batch defaults: wasm and cpu keep today's values whatever the budget", () => {
  assert.deepEqual(CPU_BATCH_DEFAULTS, {
    attack: 128,
    evaluate: 256,
    detect: 128,
    pud_detect: 128,
  });
  for (const kind of KINDS) {
    for (const backend of ["wasm", "cpu"] as const) {
      assert.equal(defaultBatchSize(kind, backend), CPU_BATCH_DEFAULTS[kind]);
      // Not clamped: a default that does not fit is refused (413) as before, not silently shrunk.
      assert.equal(defaultBatchSize(kind, backend, 3), CPU_BATCH_DEFAULTS[kind]);
      assert.equal(defaultBatchSize(kind, backend, 0), CPU_BATCH_DEFAULTS[kind]);
      // resolveBatchSize does not even ask the classifier for its budget there.
      const never = {
        maxBatch: () => {
          throw new Error("budget read on " + backend);
        },
      };
      assert.equal(
        resolveBatchSize(kind, undefined, backend, never, true),
        CPU_BATCH_DEFAULTS[kind],
      );
      assert.equal(resolveBatchSize(kind, 7, backend, never, true), 7);
    }
  }
});

Deno.test("batch defaults: webgpu is larger and clamped to the activation budget and the schema maximum", () => {
  for (const kind of GPU_KINDS) {
    assert.ok(followsBackend(kind));
    assert.ok(WEBGPU_BATCH_DEFAULTS[kind] > CPU_BATCH_DEFAULTS[kind]);
    assert.ok(WEBGPU_BATCH_DEFAULTS[kind] <= BATCH_MAXIMA[kind]);
    // Roomy budget (or none): the full webgpu value.
    assert.equal(defaultBatchSize(kind, "webgpu"), 1024);
    assert.equal(defaultBatchSize(kind, "webgpu", maxBatchFor(budget(1000, 2 ** 30))), 1024);
    // A model whose 1024-image backward pass needs 2× the budget gets the largest batch that fits.
    const tight = budget(2 ** 20, 2 ** 30);
    assert.equal(maxBatchFor(tight), 512);
    assert.equal(defaultBatchSize(kind, "webgpu", maxBatchFor(tight)), 512);
    // Forward-only use counts activations once, so twice the images fit.
    assert.equal(
      defaultBatchSize(kind, "webgpu", maxBatchFor({ ...tight, backward: false })),
      1024,
    );
    // Not even one image fits: 1 (the classifier's check then refuses it with 413, as on wasm).
    assert.equal(defaultBatchSize(kind, "webgpu", maxBatchFor(budget(2 ** 31, 2 ** 30))), 1);
    // The classifier's own figure, with the backward flag the caller gives.
    const clf = { maxBatch: (backward = true) => (backward ? 300 : 600) };
    assert.equal(resolveBatchSize(kind, undefined, "webgpu", clf, true), 300);
    assert.equal(resolveBatchSize(kind, undefined, "webgpu", clf, false), 600);
    // Hand-built classifiers have no budget: unclamped.
    assert.equal(resolveBatchSize(kind, undefined, "webgpu", {}, true), 1024);
    // An explicit batch_size is kept as sent on every backend.
    assert.equal(resolveBatchSize(kind, 2000, "webgpu", clf, true), 2000);
    assert.equal(
      batchDefaultText(kind),
      `default: ${CPU_BATCH_DEFAULTS[kind]} on wasm/cpu, 1024 on webgpu (lowered to the ` +
        "largest batch the model's activation budget allows)",
    );
  }
  // pud's mini-batch is the same on every backend, and not clamped there either.
  assert.ok(!followsBackend("pud_detect"));
  const clf = { maxBatch: () => 5 };
  assert.equal(resolveBatchSize("pud_detect", undefined, "webgpu", clf, true), 128);
  assert.equal(defaultBatchSize("pud_detect", "webgpu", 5), 128);
  assert.equal(batchDefaultText("pud_detect"), "default: 128 on every backend");
});

Deno.test("batch defaults: on the lab's models at the default budget, the small CNN gets 1024 on webgpu and the VGG-BN net what fits", async () => {
  await setupBackend();
  const before = tf.memory().numTensors;
  const models = [
    buildCnn([28, 28, 1], 10, 1),
    buildVggBn([32, 32, 3], 10, 1),
  ];
  try {
    const [cnn, vgg] = models.map((m) => {
      const plan = planActivations(JSON.parse(JSON.stringify(m.toJSON(null, false))));
      return budgetOf(plan, DEFAULT_MAX_ACTIVATION_BYTES, true);
    });
    // 1024 images of the small CNN with gradients fit in the default 1 GiB.
    assert.ok(maxBatchFor(cnn) >= 1024, `${maxBatchFor(cnn)}`);
    assert.equal(defaultBatchSize("attack", "webgpu", maxBatchFor(cnn)), 1024);
    // The VGG-BN net (width 64, 32×32×3) does not: the largest batch that does, twice that
    // forward-only; wasm keeps 128 either way.
    const back = maxBatchFor(vgg), fwd = maxBatchFor({ ...vgg, backward: false });
    assert.ok(back < 1024 && fwd < 1024 && fwd >= 2 * back, `${back} ${fwd}`);
    assert.equal(defaultBatchSize("attack", "webgpu", back), back);
    assert.equal(defaultBatchSize("detect", "webgpu", fwd), fwd);
    assert.equal(defaultBatchSize("attack", "wasm", back), 128);
  } finally {
    models.forEach((m) => m.dispose());
  }
  assert.equal(tf.memory().numTensors, before);
});

// ---- the schemas: batch_size optional, no parse-time default, bounds as before ----

const SCHEMAS: { kind: BatchKind; schema: z.ZodType; base: Record<string, unknown> }[] = [
  ...["fgsm", "pgd", "mifgsm", "apgd", "square", "autoattack"].map((attack) => ({
    kind: "attack" as const,
    schema: AttackParamsSchema,
    base: { attack },
  })),
  { kind: "evaluate", schema: EvaluateParamsSchema, base: {} },
  ...["spectral", "activation-clustering", "strip", "spectre"].map((method) => ({
    kind: "detect" as const,
    schema: DetectParamsSchema,
    base: { method },
  })),
  { kind: "pud_detect", schema: DetectParamsSchema, base: { method: "pud" } },
];

Deno.test("batch_size: omitted parses with no default, an explicit one is kept, bad ones are refused", () => {
  for (const { kind, schema, base } of SCHEMAS) {
    const what = JSON.stringify(base);
    const omitted = schema.parse(base) as Record<string, unknown>;
    assert.ok(!("batch_size" in omitted), `${what}: no parse-time default`);
    for (const ok of [1, 32, BATCH_MAXIMA[kind]]) {
      const p = schema.parse({ ...base, batch_size: ok }) as { batch_size: number };
      assert.equal(p.batch_size, ok, what);
    }
    for (const bad of [0, -1, 1.5, BATCH_MAXIMA[kind] + 1, 1e9, "128", null, true, [128], {}]) {
      assert.ok(!schema.safeParse({ ...base, batch_size: bad }).success, `${what} ${bad}`);
    }
  }
  assert.deepEqual(BATCH_MAXIMA, { attack: 1024, evaluate: 4096, detect: 1024, pud_detect: 1024 });
});

Deno.test("batch_size: the OpenAPI description of each field states both defaults", () => {
  for (const { kind, schema, base } of SCHEMAS) {
    const doc = JSON.stringify(z.toJSONSchema(schema, { io: "input" }));
    assert.ok(doc.includes(batchDefaultText(kind)), `${JSON.stringify(base)}: ${kind}`);
  }
});

// ---- resolution in the run functions, on a real classifier with a budget ----

/** The tiny fixture CNN with a budget that fits `backwardFits` images with gradients. */
async function tinyWithBudget(backwardFits?: number): Promise<LoadedClassifier> {
  const modelJson = fixtureBytes("model.json");
  const topology = JSON.parse(new TextDecoder().decode(modelJson)).modelTopology;
  const per = planActivations(topology).bytesPerSample;
  const bundle = parseBundle(modelJson, [{
    name: "weights.bin",
    bytes: fixtureBytes("weights.bin"),
  }], {
    maxModelJsonBytes: 1e7,
    maxWeightBytes: 1e8,
    maxParams: 1e8,
    maxLayers: 100,
    // Half an image of slack: exactly backwardFits images with gradients, 2× without.
    maxActivationBytes: backwardFits === undefined ? undefined : (backwardFits * 2 + 1) * per,
  });
  return await loadClassifier(bundle);
}

function fixtureData(): { images: ImageBatch; labels: Int32Array } {
  const x = parseNpy(fixtureBytes("x.npy"));
  const data = Float32Array.from(x.data as Uint8Array, (v) => v / 255);
  return {
    images: { shape: x.shape as [number, number, number, number], data },
    labels: parseNpy(fixtureBytes("y.npy")).data as Int32Array,
  };
}

Deno.test("the classifier reports the largest batch its budget fits, with and without gradients", async () => {
  await setupBackend();
  const clf = await tinyWithBudget(24);
  try {
    assert.equal(clf.maxBatch!(true), 24);
    assert.equal(clf.maxBatch!(false), 49);
    assert.equal(clf.maxBatch!(), 24);
    clf.checkBatch!(24, true);
    assert.throws(() => clf.checkBatch!(25, true), LimitExceededError);
  } finally {
    clf.dispose();
  }
});

Deno.test("runAttack() on wasm: an omitted batch_size is today's 128, bit for bit, and the report says so", async () => {
  await setupBackend();
  const clf = await tinyWithBudget();
  const { images, labels } = fixtureData();
  try {
    const run = (p: unknown, backend?: "wasm") =>
      assertNoLeak(() =>
        runAttack(clf, images, labels, AttackParamsSchema.parse(p), { maxCost: 1e9, backend })
      );
    // 64 images under 32 per batch: two seeds, so a different batch size shows in the output.
    const omitted = await run({ attack: "pgd", eps: 0.1, steps: 5, seed: 3 }, "wasm");
    const activeDefault = await run({ attack: "pgd", eps: 0.1, steps: 5, seed: 3 });
    const explicit = await run({ attack: "pgd", eps: 0.1, steps: 5, seed: 3, batch_size: 128 });
    const other = await run({ attack: "pgd", eps: 0.1, steps: 5, seed: 3, batch_size: 32 });
    assert.equal(omitted.report.params.batch_size, 128);
    // Without `backend` the one tfjs runs now decides (wasm in the ordinary test run).
    assert.equal(
      activeDefault.report.params.batch_size,
      defaultBatchSize("attack", activeBackend()),
    );
    assert.equal(explicit.report.params.batch_size, 128);
    assert.equal(other.report.params.batch_size, 32);
    assert.deepEqual(omitted.adversarial, explicit.adversarial);
    if (activeBackend() === "wasm") {
      assert.deepEqual(activeDefault.adversarial, explicit.adversarial);
    }
    assert.notDeepEqual(other.adversarial, explicit.adversarial);
  } finally {
    clf.dispose();
  }
});

Deno.test("runAttack() for webgpu clamps the default to a budget that allows fewer images (no webgpu started)", async () => {
  await setupBackend();
  const clf = await tinyWithBudget(24);
  const { images, labels } = fixtureData();
  try {
    const p = { attack: "pgd", eps: 0.1, steps: 3, seed: 5 } as const;
    const gpu = await assertNoLeak(() =>
      runAttack(clf, images, labels, AttackParamsSchema.parse(p), {
        maxCost: 1e9,
        backend: "webgpu",
      })
    );
    assert.equal(gpu.report.params.batch_size, 24);
    const same = await assertNoLeak(() =>
      runAttack(clf, images, labels, AttackParamsSchema.parse({ ...p, batch_size: 24 }), {
        maxCost: 1e9,
        backend: "wasm",
      })
    );
    assert.deepEqual(gpu.adversarial, same.adversarial);
    // Square is forward-only: twice the images fit.
    const sq = await assertNoLeak(() =>
      runAttack(clf, images, labels, AttackParamsSchema.parse({ attack: "square", queries: 2 }), {
        maxCost: 1e9,
        backend: "webgpu",
      })
    );
    assert.equal(sq.report.params.batch_size, 49);
    // On wasm the default is not clamped: 64 images with gradients do not fit, a 413 as before.
    await assert.rejects(
      runAttack(clf, images, labels, AttackParamsSchema.parse(p), {
        maxCost: 1e9,
        backend: "wasm",
      }),
      (e: unknown) =>
        e instanceof LimitExceededError &&
        /batch of 64 .*A batch of at most \d+ fits/.test(e.message),
    );
  } finally {
    clf.dispose();
  }
});

Deno.test("runEvaluate() and runDetect() resolve their defaults by backend and report them", async () => {
  await setupBackend();
  const clf = await tinyWithBudget(24);
  const roomy = await tinyWithBudget();
  const parts = fixtureData();
  try {
    const ev = (p: unknown, backend: "wasm" | "webgpu", c = clf) =>
      assertNoLeak(() =>
        runEvaluate(c, { ...parts }, EvaluateParamsSchema.parse(p), { maxCost: 1e9, backend })
      );
    assert.equal((await ev({}, "wasm", roomy)).batch_size, 256);
    assert.equal((await ev({ batch_size: 16 }, "webgpu")).batch_size, 16);
    // Clean accuracy is forward-only; robust accuracy counts gradients.
    assert.equal((await ev({}, "webgpu")).batch_size, 49);
    const robust = await ev({ attack: { steps: 2, masking_check: false } }, "webgpu");
    assert.equal(robust.batch_size, 24);
    const wasmRobust = await ev(
      { attack: { steps: 2, masking_check: false }, batch_size: 24 },
      "wasm",
    );
    assert.equal(robust.robust_accuracy, wasmRobust.robust_accuracy);
    assert.deepEqual(robust.clean, wasmRobust.clean);

    const det = (p: unknown, backend: "wasm" | "webgpu", c = clf) =>
      assertNoLeak(() =>
        runDetect(c, parts.images, parts.labels, DetectParamsSchema.parse(p), {
          maxCost: 1e9,
          backend,
        })
      );
    const wasm = await det({ method: "spectral" }, "wasm", roomy);
    assert.equal(wasm.report.batch_size, 128);
    const gpu = await det({ method: "spectral" }, "webgpu");
    assert.equal(gpu.report.batch_size, 49);
    assert.deepEqual(gpu.result.flags, wasm.result.flags);
    for (let i = 0; i < gpu.result.scores.length; i++) {
      const [a, b] = [gpu.result.scores[i], wasm.result.scores[i]];
      assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `score ${i}: ${a} vs ${b}`);
    }
    assert.equal((await det({ method: "strip", blends: 2 }, "webgpu")).report.batch_size, 49);
    assert.equal((await det({ method: "spectral", batch_size: 8 }, "webgpu")).report.batch_size, 8);
    // pud's SGD mini-batch stays 128 on webgpu, not lowered to fit: the same 413 as on wasm.
    const pud = { method: "pud", max_steps: 2, pgd_steps: 1, finetune_epochs: 1 };
    assert.equal((await det(pud, "webgpu", roomy)).report.batch_size, 128);
    for (const backend of ["wasm", "webgpu"] as const) {
      const before = tf.memory().numTensors;
      await assert.rejects(
        runDetect(clf, parts.images, parts.labels, DetectParamsSchema.parse(pud), {
          maxCost: 1e9,
          backend,
        }),
        LimitExceededError,
      );
      assert.equal(tf.memory().numTensors, before, `pud on ${backend} left tensors`);
    }
  } finally {
    clf.dispose();
    roomy.dispose();
  }
});

// ---- over HTTP (the engine runs wasm here) ----

Deno.test("the replies echo the resolved batch size over HTTP: today's defaults on wasm, or what was sent", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const post = async (path: string, params: unknown) => {
    const res = await app.request(`${path}?format=json`, {
      method: "POST",
      body: fixtureForm({ labels: true, params }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return await res.json();
  };
  // The engine's backend decides (wasm here; webgpu when BACKEND says so: the tiny model fits 1024).
  const engine = (Deno.env.get("BACKEND") ?? "wasm") as BackendName;
  const want = (kind: BatchKind) => defaultBatchSize(kind, engine);
  assert.equal(
    (await post("/v1/attacks", { attack: "fgsm", eps: 0.05 })).params.batch_size,
    want("attack"),
  );
  assert.equal(
    (await post("/v1/attacks", { attack: "fgsm", eps: 0.05, batch_size: 8 })).params.batch_size,
    8,
  );
  assert.equal((await post("/v1/evaluate", {})).batch_size, want("evaluate"));
  assert.equal((await post("/v1/evaluate", { batch_size: 5 })).batch_size, 5);
  assert.equal((await post("/v1/detect", { method: "spectral" })).batch_size, want("detect"));
  assert.equal((await post("/v1/detect", { method: "spectral", batch_size: 9 })).batch_size, 9);
  for (
    const [path, params] of [
      ["/v1/attacks", { attack: "fgsm", batch_size: 0 }],
      ["/v1/attacks", { attack: "pgd", batch_size: 1025 }],
      ["/v1/evaluate", { batch_size: 1.5 }],
      ["/v1/evaluate", { batch_size: null }],
      ["/v1/detect", { method: "spectral", batch_size: "128" }],
      ["/v1/detect", { method: "pud", batch_size: -1 }],
    ] as const
  ) {
    const res = await app.request(path, {
      method: "POST",
      body: fixtureForm({ labels: true, params }),
    });
    assert.equal(await errorCode(res, 400), "invalid_params", `${path} ${JSON.stringify(params)}`);
  }
  assert.equal(engineTensors(app), before);
});

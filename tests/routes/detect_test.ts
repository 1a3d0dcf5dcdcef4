import assert from "node:assert/strict";
import {
  blobOf,
  engineTensors,
  errorCode,
  fixtureBytes,
  fixtureForm,
  testApp,
} from "../_helpers.ts";
import { encodeNpy, parseNpy } from "../../src/io/npy.ts";

Deno.test("POST /v1/detect returns a score and flag per image, per-class counts and metrics with ground truth", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const form = fixtureForm({ labels: true, params: { method: "spectral" } });
  const truth = Array.from({ length: 64 }, (_, i) => (i % 16 === 0 ? 1 : 0));
  form.append("is_poison", JSON.stringify(truth));
  const res = await app.request("/v1/detect", { method: "POST", body: form });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.method, "spectral");
  assert.equal(body.scores.length, 64);
  assert.equal(body.flags.length, 64);
  assert.equal(body.flagged, body.flags.filter((f: number) => f === 1).length);
  assert.deepEqual(
    body.flagged_indices,
    body.flags.flatMap((f: number, i: number) => f ? [i] : []),
  );
  assert.equal(body.per_class.reduce((a: number, k: { n: number }) => a + k.n, 0), 64);
  assert.equal(typeof body.threshold.rule, "string");
  assert.ok(body.metrics.auroc >= 0 && body.metrics.auroc <= 1);
  assert.equal(engineTensors(app), before);
});

Deno.test("POST /v1/detect answers bad inputs with clear 4xx errors", async () => {
  const app = await testApp();
  const y = Array.from(parseNpy(fixtureBytes("y.npy")).data as Int32Array);
  const x = parseNpy(fixtureBytes("x.npy"));
  const five = encodeNpy({
    dtype: "uint8",
    shape: [5, 10, 10, 1],
    data: (x.data as Uint8Array).slice(0, 500),
  });
  const withLabels = (labels: unknown, params: unknown, images?: Uint8Array) => {
    const f = fixtureForm({ params, images: images === undefined });
    if (images) f.append("images", blobOf(images), "x.npy");
    f.append("labels", JSON.stringify(labels));
    return f;
  };
  const cases: [string, FormData, number, string?][] = [
    [
      "labels count mismatch",
      withLabels(y.slice(3), { method: "spectral" }),
      422,
      "shape_mismatch",
    ],
    ["unknown method", withLabels(y, { method: "magic" }), 400, "invalid_params"],
    ["layer not in the model", withLabels(y, { method: "spectral", layer: "nope" }), 422],
    [
      "fewer images than the method needs",
      withLabels(y.slice(0, 5), { method: "spectral" }, five),
      422,
    ],
    [
      "no params",
      (() => {
        const f = fixtureForm({ labels: true });
        return f;
      })(),
      400,
    ],
  ];
  const badTruth = fixtureForm({ labels: true, params: { method: "spectral" } });
  badTruth.append("is_poison", JSON.stringify(y.map(() => 2)));
  cases.push(["ground truth other than 0/1", badTruth, 422]);
  for (const [what, body, status, code] of cases) {
    const res = await app.request("/v1/detect", { method: "POST", body });
    const got = await errorCode(res, status).catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    if (code) assert.equal(got, code, what);
  }
});

Deno.test("POST /v1/detect with method pud uses a purified model sent with the request", async () => {
  const { trainedBundle, makeSet, backdooredClassifier } = await import(
    "../purify/synthetic_backdoor.ts"
  );
  const { parseRoundParams } = await import("../../src/purify/params.ts");
  const { runRound } = await import("../../src/purify/round.ts");
  const { tinySchedule } = await import("../purify/synthetic_backdoor.ts");
  const app = await testApp();
  const model = await trainedBundle();
  const extra = makeSet(240, 0.1, 2);
  const clf = await backdooredClassifier();
  let purified;
  try {
    await runRound(
      clf,
      extra.images,
      extra.labels,
      parseRoundParams({ schedule: tinySchedule(), seed: 7 }),
      undefined,
      { maxSteps: 1_000_000, maxMs: 600_000 },
    );
    purified = await clf.save();
  } finally {
    clf.dispose();
  }
  const before = engineTensors(app);
  const form = (method: string, withPurified = true) => {
    const f = new FormData();
    f.append("model", blobOf(model.modelJson), "model.json");
    for (const w of model.weights) f.append("weights", blobOf(w.bytes), w.name);
    if (withPurified) {
      f.append("purified_model", blobOf(purified.modelJson), "model.json");
      for (const w of purified.weights) f.append("purified_weights", blobOf(w.bytes), w.name);
    }
    f.append(
      "images",
      blobOf(encodeNpy({ dtype: "float32", shape: extra.images.shape, data: extra.images.data })),
      "x.npy",
    );
    f.append("labels", JSON.stringify(Array.from(extra.labels)));
    f.append("is_poison", JSON.stringify(Array.from(extra.poisoned)));
    f.append("params", JSON.stringify({ method }));
    return f;
  };
  const res = await app.request("/v1/detect", { method: "POST", body: form("pud") });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.diagnostics.purified, true, "the supplied model was used, no fine-tune");
  assert.ok(body.metrics.auroc > 0.9, `AUROC with the purified model: ${body.metrics.auroc}`);
  const wrong = await app.request("/v1/detect", { method: "POST", body: form("spectral") });
  assert.equal(await errorCode(wrong, 422), "unprocessable");
  const noWeights = form("pud");
  noWeights.delete("purified_weights");
  const missing = await app.request("/v1/detect", { method: "POST", body: noWeights });
  assert.ok([400, 422].includes(missing.status), `status ${missing.status}`);
  await errorCode(missing, missing.status);
  assert.equal(engineTensors(app), before);
});

import assert from "node:assert/strict";
import { blobOf, engineTensors, errorCode, testApp } from "../_helpers.ts";
import { encodeNpy } from "../../src/io/npy.ts";
import { parseBundle } from "../../src/io/model_bundle.ts";
import { loadClassifier } from "../../src/model/load_classifier.ts";
import { attackSuccessRate } from "../../src/metrics/attack_success_rate.ts";
import { parseRoundParams } from "../../src/purify/params.ts";
import { runRound } from "../../src/purify/round.ts";
import { defaultSchedule, publishedSchedule, ScheduleSchema } from "../../src/purify/schedule.ts";
import {
  backdooredClassifier,
  makeSet,
  TARGET,
  tinySchedule,
  trainedBundle,
  triggered,
  weightsOf,
} from "../purify/synthetic_backdoor.ts";

const LIMITS = { maxModelJsonBytes: 1e7, maxWeightBytes: 1e8, maxParams: 1e7, maxLayers: 100 };
const extra = makeSet(240, 0.1, 2);
const imagesNpy = encodeNpy({
  dtype: "float32",
  shape: extra.images.shape,
  data: extra.images.data,
});
const labelsNpy = encodeNpy({ dtype: "int32", shape: [extra.labels.length], data: extra.labels });

interface Bundle {
  modelJson: Uint8Array;
  weights: { name: string; bytes: Uint8Array }[];
}

function roundForm(model: Bundle, params: unknown, state?: Uint8Array | string): FormData {
  const f = new FormData();
  f.append("model", blobOf(model.modelJson), "model.json");
  for (const w of model.weights) f.append("weights", blobOf(w.bytes), w.name);
  f.append("images", blobOf(imagesNpy), "extra_x.npy");
  f.append("labels", blobOf(labelsNpy), "extra_y.npy");
  if (params !== undefined) f.append("params", JSON.stringify(params));
  if (state !== undefined) {
    f.append("state", typeof state === "string" ? state : blobOf(state), "state.json");
  }
  return f;
}

async function bytesOf(form: FormData, name: string): Promise<Uint8Array> {
  return new Uint8Array(await (form.get(name) as File).arrayBuffer());
}

/** Runs rounds over HTTP until done; returns the final bundle, state and every report. */
async function purifyOverHttp(
  app: Awaited<ReturnType<typeof testApp>>,
  params: Record<string, unknown>,
  maxRounds = 200,
) {
  let model: Bundle = await trainedBundle();
  let state: Uint8Array | undefined;
  const reports: Record<string, unknown>[] = [];
  for (let r = 0; r < maxRounds; r++) {
    const res = await app.request("/v1/purify/rounds", {
      method: "POST",
      body: roundForm(model, r === 0 ? params : { max_steps: params.max_steps }, state),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.match(res.headers.get("content-type") ?? "", /^multipart\/form-data/);
    const form = await res.formData();
    const report = JSON.parse(new TextDecoder().decode(await bytesOf(form, "report")));
    reports.push(report);
    const weights = await Promise.all(
      (form.getAll("weights") as File[]).map(async (w) => ({
        name: w.name,
        bytes: new Uint8Array(await w.arrayBuffer()),
      })),
    );
    model = { modelJson: await bytesOf(form, "model"), weights };
    state = await bytesOf(form, "state");
    assert.equal(res.headers.get("x-purify-done"), String(report.done));
    if (report.done) break;
  }
  return { model, state: state!, reports };
}

Deno.test("GET /v1/purify/schedule returns the default schedule, and the published one on request", async () => {
  const app = await testApp();
  const res = await app.request("/v1/purify/schedule");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(body, JSON.parse(JSON.stringify(defaultSchedule())));
  assert.ok(ScheduleSchema.safeParse(body).success, "it parses back as a schedule");
  const pub = await (await app.request("/v1/purify/schedule?preset=published")).json();
  assert.deepEqual(pub, JSON.parse(JSON.stringify(publishedSchedule())));
  const bad = await app.request("/v1/purify/schedule?preset=%3Cscript%3E");
  assert.equal(await errorCode(bad, 400), "invalid_params");
});

Deno.test("POST /v1/purify/rounds, iterated with small budgets, removes the backdoor and ends exactly where one in-process run ends", async () => {
  const app = await testApp();
  await trainedBundle();
  const before = engineTensors(app);
  const { model, reports } = await purifyOverHttp(app, {
    schedule: tinySchedule(),
    seed: 7,
    max_steps: 40,
  });
  assert.ok(reports.length > 3, `several rounds ran (${reports.length})`);
  const last = reports.at(-1)!;
  assert.equal(last.done, true);
  assert.equal(last.progress, 1);
  assert.equal(last.suspect_class, TARGET);
  assert.equal(typeof last.backend, "string");
  for (const r of reports) assert.ok((r.steps as number) <= 40, `round steps ${r.steps}`);
  const progress = reports.map((r) => r.progress as number);
  assert.deepEqual(progress, [...progress].sort((a, b) => a - b), "progress never goes back");
  const flagged = last.flagged_indices as number[];
  const hits = flagged.filter((i) => extra.poisoned[i] === 1).length;
  assert.ok(hits >= 0.8 * 24, `most poisoned images are flagged (${hits} of 24)`);
  assert.equal(engineTensors(app), before, "no tensor left behind");

  // The same purification in one in-process round gives bit-identical weights.
  const reference = await backdooredClassifier();
  const overHttp = await loadClassifier(parseBundle(model.modelJson, model.weights, LIMITS));
  try {
    const params = parseRoundParams({ schedule: tinySchedule(), seed: 7 });
    const r = await runRound(reference, extra.images, extra.labels, params, undefined, {
      maxSteps: 1_000_000,
      maxMs: 3_600_000,
    });
    assert.equal(r.done, true);
    assert.deepEqual(await weightsOf(overHttp), await weightsOf(reference));
    const trig = triggered(makeSet(200, 0, 3));
    const asr = await attackSuccessRate(overHttp, trig.images, TARGET, {
      sourceLabels: trig.source,
    });
    assert.ok(asr.asr! < 0.1, `ASR of the model purified over HTTP: ${asr.asr}`);
  } finally {
    reference.dispose();
    overHttp.dispose();
  }
});

Deno.test("POST /v1/purify/rounds refuses bad params, tampered and foreign states with 4xx and keeps serving", async () => {
  const app = await testApp({ MAX_ROUND_STEPS: "5" });
  const model = await trainedBundle();
  const first = await app.request("/v1/purify/rounds", {
    method: "POST",
    body: roundForm(model, { schedule: tinySchedule(), seed: 7 }),
  });
  assert.equal(first.status, 200, await first.clone().text());
  const form = await first.formData();
  const report = JSON.parse(await (form.get("report") as File).text());
  assert.equal(report.steps, 5, "MAX_ROUND_STEPS caps the round");
  const next: Bundle = {
    modelJson: await bytesOf(form, "model"),
    weights: [{
      name: (form.get("weights") as File).name,
      bytes: await bytesOf(form, "weights"),
    }],
  };
  const altered: Bundle = {
    modelJson: next.modelJson,
    weights: [{ name: next.weights[0].name, bytes: next.weights[0].bytes.slice() }],
  };
  new Float32Array(altered.weights[0].bytes.buffer)[0] += 0.5;
  const stateText = new TextDecoder().decode(await bytesOf(form, "state"));
  const state = JSON.parse(stateText);
  const edited = (f: (s: Record<string, unknown>) => void) => {
    const s = structuredClone(state);
    f(s);
    return JSON.stringify(s);
  };
  const before = engineTensors(app);
  const cases: [string, FormData, number, string?][] = [
    ["no params part (every param has a default)", roundForm(model, undefined), 0],
    [
      "params not JSON",
      (() => {
        const f = roundForm(model, undefined);
        f.append("params", "{schedule: default}");
        return f;
      })(),
      400,
      "malformed_input",
    ],
    ["unknown param", roundForm(model, { speed: "fast" }), 400, "invalid_params"],
    ["unknown preset", roundForm(model, { schedule: "fastest" }), 400, "invalid_params"],
    ["negative seed", roundForm(model, { seed: -1 }), 400, "invalid_params"],
    ["zero max_steps", roundForm(model, { max_steps: 0 }), 400, "invalid_params"],
    [
      "a schedule with no stages",
      roundForm(model, { schedule: { ...tinySchedule(), stages: [] } }),
      400,
      "invalid_params",
    ],
    ["state not JSON", roundForm(next, {}, "{not json"), 400, "malformed_input"],
    ["state not UTF-8", roundForm(next, {}, new Uint8Array([0xff, 0xfe, 0x7b])), 400],
    ["state an array", roundForm(next, {}, "[]"), 400],
    ["state truncated", roundForm(next, {}, stateText.slice(0, stateText.length / 2)), 400],
    [
      "state checksum wrong",
      roundForm(next, {}, edited((s) => (s.steps_done = (s.steps_done as number) + 1))),
      400,
    ],
    [
      "state with an extra field",
      roundForm(next, {}, edited((s) => (s.admin = true))),
      400,
    ],
    ["a model other than the one the last round returned", roundForm(altered, {}, stateText), 422],
    ["seed contradicting the state", roundForm(next, { seed: 8 }, stateText), 422],
    [
      "schedule contradicting the state",
      roundForm(next, { schedule: "published" }, stateText),
      422,
    ],
  ];
  // Another dataset with the state of this one.
  const other = roundForm(next, {}, stateText);
  other.set(
    "labels",
    blobOf(encodeNpy({
      dtype: "int32",
      shape: [extra.labels.length],
      data: extra.labels.map((y) => (y + 1) % 4),
    })),
    "y.npy",
  );
  cases.push(["state of another dataset", other, 422]);
  const fewer = roundForm(next, {}, stateText);
  fewer.set(
    "images",
    blobOf(encodeNpy({
      dtype: "float32",
      shape: [100, 10, 10, 1],
      data: extra.images.data.slice(0, 10_000),
    })),
    "x.npy",
  );
  fewer.set(
    "labels",
    blobOf(encodeNpy({ dtype: "int32", shape: [100], data: extra.labels.slice(0, 100) })),
    "y.npy",
  );
  cases.push(["state for 240 images, 100 sent", fewer, 422]);
  const badLabel = roundForm(model, {});
  badLabel.set("labels", JSON.stringify(Array.from(extra.labels, () => 9)));
  cases.push(["labels outside the model's classes", badLabel, 422]);
  const wrongShape = roundForm(model, {});
  wrongShape.set(
    "images",
    blobOf(
      encodeNpy({ dtype: "float32", shape: [240, 8, 8, 1], data: new Float32Array(240 * 64) }),
    ),
    "x.npy",
  );
  cases.push(["images of the wrong size", wrongShape, 422, "shape_mismatch"]);
  const noState = roundForm(model, {});
  noState.append("state", "{}");
  noState.append("state", "{}");
  cases.push(["two state parts", noState, 400]);
  for (const [what, body, status, code] of cases) {
    const res = await app.request("/v1/purify/rounds", { method: "POST", body });
    if (status === 0) {
      assert.equal(res.status, 200, `${what}: ${await res.clone().text()}`);
      await res.arrayBuffer();
      continue;
    }
    const got = await errorCode(res, status).catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    if (code) assert.equal(got, code, what);
  }
  assert.equal(engineTensors(app), before, "no tensor left behind by refused rounds");
  const again = await app.request("/v1/purify/rounds", {
    method: "POST",
    body: roundForm(next, {}, stateText),
  });
  assert.equal(again.status, 200, "the untampered state still works afterwards");
  await again.arrayBuffer();
});

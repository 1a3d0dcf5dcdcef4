/**
 * End to end on WebGPU through HTTP (BACKEND=webgpu; ignored otherwise, and listed by
 * `deno task test:webgpu`): the real app (testApp: config, routes, engine worker on webgpu) on the
 * tiny fixture model and its 64 images — /readyz names webgpu, then detect, an attack, evaluate and
 * one purification round with the tests' tiny schedule, each 200 with figures in range and no
 * tensor left in the engine.
 */
import assert from "node:assert/strict";
import { blobOf, engineTensors, fixtureBytes, fixtureForm, testApp } from "../_helpers.ts";
import { tinySchedule } from "../purify/synthetic_backdoor.ts";

const ON = Deno.env.get("BACKEND") === "webgpu";
const share = (v: unknown, what: string) =>
  assert.ok(typeof v === "number" && v >= 0 && v <= 1, `${what} = ${v}`);

Deno.test({
  name: "webgpu e2e: /readyz, detect, attack, evaluate and a purification round over HTTP",
  ignore: !ON,
  fn: async () => {
    const app = await testApp();
    const ready = await (await app.request("/readyz")).json();
    assert.equal(ready.backend.name, "webgpu");
    const before = engineTensors(app);
    const timing: string[] = [];
    const timed = async (what: string, path: string, body: FormData) => {
      const t0 = performance.now();
      const res = await app.request(path, { method: "POST", body });
      const text = await res.clone().text();
      assert.equal(res.status, 200, `${what}: ${text.slice(0, 500)}`);
      timing.push(`${what} ${Math.round(performance.now() - t0)} ms`);
      return res;
    };

    const det = await (await timed(
      "detect",
      "/v1/detect",
      fixtureForm({ labels: true, params: { method: "spectral", batch_size: 32 } }),
    )).json();
    assert.equal(det.scores.length, 64);
    assert.ok(det.scores.every(Number.isFinite), "finite scores");
    assert.equal(det.flagged, det.flags.filter((f: number) => f === 1).length);
    assert.equal(det.batch_size, 32, "an explicit batch_size is kept");

    const atk = await (await timed(
      "attack",
      "/v1/attacks?format=json",
      fixtureForm({ labels: true, params: { attack: "pgd", eps: 0.1, steps: 3, seed: 3 } }),
    )).json();
    assert.equal(atk.n, 64);
    assert.equal(atk.backend, "webgpu");
    share(atk.success_rate, "success_rate");
    share(atk.clean_accuracy, "clean_accuracy");
    assert.ok(atk.robust_accuracy <= atk.clean_accuracy);
    assert.ok(atk.success_rate > 0, "PGD at eps 0.1 flips some images");
    // The webgpu default (the tiny model's budget fits far more than 1024 images).
    assert.equal(atk.params.batch_size, 1024);

    const ev = await (await timed(
      "evaluate",
      "/v1/evaluate",
      fixtureForm({
        labels: true,
        params: { attack: { eps: 0.05, steps: 2, seed: 1, max_images: 16 } },
      }),
    )).json();
    share(ev.clean_accuracy ?? ev.accuracy, "evaluate clean accuracy");
    share(ev.robust_accuracy, "evaluate robust accuracy");
    assert.equal(ev.batch_size, 1024);

    const f = new FormData();
    f.append("model", blobOf(fixtureBytes("model.json")), "model.json");
    f.append("weights", blobOf(fixtureBytes("weights.bin")), "weights.bin");
    f.append("images", blobOf(fixtureBytes("x.npy")), "x.npy");
    f.append("labels", blobOf(fixtureBytes("y.npy")), "y.npy");
    f.append("params", JSON.stringify({ schedule: tinySchedule(), seed: 7, max_steps: 3 }));
    const round = await timed("purify round", "/v1/purify/rounds", f);
    const form = await round.formData();
    const report = JSON.parse(await (form.get("report") as File).text());
    assert.equal(report.backend, "webgpu");
    assert.ok(report.steps >= 1 && report.steps <= 3, `steps ${report.steps}`);
    share(report.progress, "progress");
    assert.ok((form.getAll("weights") as File[]).length > 0, "weights come back");
    assert.ok((form.get("state") as File).size > 0, "state comes back");

    assert.equal(engineTensors(app), before, "no tensor left in the engine");
    console.log(`llvmpipe timings: ${timing.join(", ")}`);
  },
});

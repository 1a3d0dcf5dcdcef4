import assert from "node:assert/strict";
import { engineTensors, errorCode, fixtureBytes, fixtureForm, testApp } from "../_helpers.ts";
import { parseNpy } from "../../src/io/npy.ts";

const x = () => parseNpy(fixtureBytes("x.npy"));
const y = () => Array.from(parseNpy(fixtureBytes("y.npy")).data as Int32Array);

Deno.test("POST /v1/attacks returns .npy adversarial images within eps and a consistent report", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const eps = 0.1;
  const res = await app.request("/v1/attacks", {
    method: "POST",
    body: fixtureForm({ labels: true, params: { attack: "pgd", eps, steps: 10, seed: 3 } }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  assert.match(res.headers.get("content-type") ?? "", /^multipart\/form-data/);
  const form = await res.formData();
  const adv = parseNpy(new Uint8Array(await (form.get("adversarial") as File).arrayBuffer()));
  const report = JSON.parse(await (form.get("report") as File).text());
  assert.deepEqual(adv.shape, [64, 10, 10, 1]);
  assert.equal(adv.dtype, "float32");
  const clean = x().data as Uint8Array;
  const a = adv.data as Float32Array;
  for (let i = 0; i < a.length; i++) {
    assert.ok(a[i] >= 0 && a[i] <= 1);
    assert.ok(Math.abs(a[i] - Math.fround(clean[i] / 255)) <= Math.fround(eps), `pixel ${i}`);
  }
  assert.equal(report.n, 64);
  assert.equal(report.images.length, 64);
  const succ = report.images.filter((r: { success: boolean }) => r.success).length;
  assert.ok(Math.abs(report.success_rate - succ / 64) < 1e-9);
  assert.ok(report.robust_accuracy <= report.clean_accuracy);
  assert.ok(report.success_rate > 0.3, `PGD at eps 0.1 should flip many: ${report.success_rate}`);
  assert.equal(report.backend, Deno.env.get("BACKEND") ?? "wasm");
  assert.equal(engineTensors(app), before);
});

Deno.test("POST /v1/attacks gives curl users the report alone as JSON on request", async () => {
  const app = await testApp();
  const res = await app.request("/v1/attacks?format=json", {
    method: "POST",
    body: fixtureForm({ labels: true, params: { attack: "fgsm", eps: 0.05 } }),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.params.attack, "fgsm");
  assert.equal(body.images[0].linf <= 0.05 + 1e-7, true);
  const viaAccept = await app.request("/v1/attacks", {
    method: "POST",
    headers: { Accept: "application/json" },
    body: fixtureForm({ labels: true, params: { attack: "fgsm", eps: 0.05 } }),
  });
  assert.match(viaAccept.headers.get("content-type") ?? "", /application\/json/);
  assert.deepEqual(
    (await viaAccept.json()).images.map((r: { adv_pred: number }) => r.adv_pred),
    body.images.map((r: { adv_pred: number }) => r.adv_pred),
  );
});

Deno.test("POST /v1/attacks answers bad inputs with clear 4xx errors and leaks nothing", async () => {
  const app = await testApp({ MAX_ATTACK_COST: "5000" });
  const before = engineTensors(app);
  const labels = y();
  const cases: [string, FormData, number, string?][] = [
    ["eps of 0", fixtureForm({ labels: true, params: { attack: "pgd", eps: 0 } }), 400],
    ["eps above 1", fixtureForm({ labels: true, params: { attack: "pgd", eps: 1.5 } }), 400],
    ["negative eps", fixtureForm({ labels: true, params: { attack: "fgsm", eps: -0.1 } }), 400],
    ["0 steps", fixtureForm({ labels: true, params: { attack: "pgd", steps: 0 } }), 400],
    ["5000 steps", fixtureForm({ labels: true, params: { attack: "pgd", steps: 5000 } }), 400],
    ["unknown attack", fixtureForm({ labels: true, params: { attack: "deepfool" } }), 400],
    ["no params", fixtureForm({ labels: true }), 400],
    ["l2 FGSM", fixtureForm({ labels: true, params: { attack: "fgsm", norm: "l2" } }), 400],
    ["unknown option", fixtureForm({ labels: true, params: { attack: "pgd", stpes: 3 } }), 400],
    [
      "unknown ensemble version",
      fixtureForm({ labels: true, params: { attack: "autoattack", version: "rand" } }),
      400,
    ],
    [
      "a loss on the ensemble",
      fixtureForm({ labels: true, params: { attack: "autoattack", loss: "dlr" } }),
      400,
    ],
    [
      "0 Square queries",
      fixtureForm({ labels: true, params: { attack: "square", queries: 0 } }),
      400,
    ],
    [
      "ensemble over MAX_ATTACK_COST",
      fixtureForm({ labels: true, params: { attack: "autoattack", version: "fast" } }),
      422,
      "cost_exceeded",
    ],
    [
      "Square's queries over MAX_ATTACK_COST",
      fixtureForm({ labels: true, params: { attack: "square", queries: 100 } }),
      422,
      "cost_exceeded",
    ],
    ["no labels", fixtureForm({ params: { attack: "fgsm" } }), 400, "missing_part"],
    [
      "cost over MAX_ATTACK_COST",
      fixtureForm({ labels: true, params: { attack: "pgd", steps: 100 } }),
      422,
      "cost_exceeded",
    ],
    [
      "target equal to a label",
      fixtureForm({ labels: true, params: { attack: "pgd", target: 0 } }),
      422,
    ],
    [
      "target beyond the classes",
      fixtureForm({ labels: true, params: { attack: "pgd", target: labels.map(() => 9) } }),
      422,
    ],
  ];
  const form = (labelsJson: string) => {
    const f = fixtureForm({ params: { attack: "fgsm" } });
    f.append("labels", labelsJson);
    return f;
  };
  cases.push(["a label out of range", form(JSON.stringify(labels.map(() => 7))), 422]);
  cases.push(["too few labels", form(JSON.stringify(labels.slice(1))), 422, "shape_mismatch"]);
  cases.push(["labels that are strings", form('["a"]'), 422]);
  for (const [what, body, status, code] of cases) {
    const res = await app.request("/v1/attacks", { method: "POST", body });
    const got = await errorCode(res, status).catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    if (code) assert.equal(got, code, what);
    assert.equal(engineTensors(app), before, `leak on ${what}`);
  }
});

Deno.test("POST /v1/attacks runs the ensemble and reports who broke each image", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const res = await app.request("/v1/attacks?format=json", {
    method: "POST",
    body: fixtureForm({
      labels: true,
      params: { attack: "autoattack", version: "fast", eps: 0.04, seed: 1 },
    }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const report = await res.json();
  const ens = report.ensemble;
  assert.deepEqual(ens.members.map((m: { member: string }) => m.member), [
    "apgd-ce",
    "apgd-t",
    "square",
  ]);
  assert.equal(report.robust_accuracy, ens.worst_case_robust_accuracy);
  const broken = report.images.filter((i: { broken_by: string | null }) => i.broken_by !== null);
  assert.equal(broken.length, Math.round(report.success_rate * 64));
  for (const im of report.images) assert.ok(im.linf <= 0.04 + 1e-7);
  assert.equal(typeof ens.gradient_masking.gradient_masking_suspected, "boolean");
  assert.equal(engineTensors(app), before);
});

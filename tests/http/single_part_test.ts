import assert from "node:assert/strict";
import { errorCode, fixtureForm, testApp } from "../_helpers.ts";
import { parseNpy } from "../../src/io/npy.ts";

const attack = () => fixtureForm({ labels: true, params: { attack: "fgsm", eps: 0.05 } });
const round = () => fixtureForm({ labels: true, params: { max_steps: 2, seed: 1 } });

Deno.test("Accept: application/x-npy on /v1/attacks answers the .npy alone", async () => {
  const app = await testApp();
  const res = await app.request("/v1/attacks", {
    method: "POST",
    headers: { Accept: "application/x-npy" },
    body: attack(),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/x-npy");
  assert.match(res.headers.get("content-disposition") ?? "", /filename="adversarial\.npy"/);
  const adv = parseNpy(new Uint8Array(await res.arrayBuffer()));
  assert.deepEqual(adv.shape, [64, 10, 10, 1]);
  assert.equal(adv.dtype, "float32");
});

Deno.test("?part=NAME on /v1/attacks answers that part alone with its own content type", async () => {
  const app = await testApp();
  const npy = await app.request("/v1/attacks?part=adversarial", { method: "POST", body: attack() });
  assert.equal(npy.status, 200);
  assert.equal(npy.headers.get("content-type"), "application/octet-stream");
  assert.deepEqual(parseNpy(new Uint8Array(await npy.arrayBuffer())).shape, [64, 10, 10, 1]);
  const report = await app.request("/v1/attacks?part=report", { method: "POST", body: attack() });
  assert.equal(report.status, 200);
  assert.equal(report.headers.get("content-type"), "application/json");
  assert.equal((await report.json()).params.attack, "fgsm");
});

Deno.test("?part=NAME on a purification round answers the state, model or report alone", async () => {
  const app = await testApp();
  const state = await app.request("/v1/purify/rounds?part=state", {
    method: "POST",
    body: round(),
  });
  assert.equal(state.status, 200, await state.clone().text());
  assert.equal(state.headers.get("content-type"), "application/json");
  assert.match(state.headers.get("content-disposition") ?? "", /filename="state\.json"/);
  assert.ok(state.headers.get("x-purify-progress") !== null, "round headers are kept");
  assert.equal(typeof (await state.json()), "object");
  const model = await app.request("/v1/purify/rounds?part=model", {
    method: "POST",
    body: round(),
  });
  assert.equal(model.status, 200);
  assert.ok("modelTopology" in await model.json());
  const weights = await app.request("/v1/purify/rounds?part=weights", {
    method: "POST",
    body: round(),
  });
  assert.equal(weights.status, 200);
  assert.equal(weights.headers.get("content-type"), "application/octet-stream");
  assert.ok((await weights.arrayBuffer()).byteLength > 0);
});

Deno.test("an unknown ?part is a 400 that names the allowed parts, before any work is done", async () => {
  const app = await testApp();
  for (
    const [path, allowed] of [
      ["/v1/attacks?part=adv", "adversarial, report"],
      ["/v1/purify/rounds?part=weight", "model, weights, state, report"],
    ]
  ) {
    // No body at all: the part name is checked before the form is read.
    const res = await app.request(path, { method: "POST" });
    const body = await res.clone().json();
    assert.equal(await errorCode(res, 400), "invalid_params");
    assert.ok(body.error.message.includes(allowed), body.error.message);
  }
  const json = await app.request("/v1/detect?part=report", { method: "POST" });
  const body = await json.clone().json();
  assert.equal(await errorCode(json, 400), "invalid_params");
  assert.match(body.error.message, /answers JSON/);
});

Deno.test("the OpenAPI document declares the format, part and preset query parameters", async () => {
  const app = await testApp();
  const doc = await (await app.request("/openapi.json")).json();
  const query = (path: string, method: string) =>
    Object.fromEntries(
      (doc.paths[path][method].parameters ?? []).map((p: { name: string; in: string }) => [
        p.name,
        p,
      ]),
    );
  const attacks = query("/v1/attacks", "post");
  assert.deepEqual(attacks.part.schema.enum, ["adversarial", "report"]);
  assert.equal(attacks.part.in, "query");
  assert.deepEqual(attacks.format.schema.enum, ["json"]);
  assert.deepEqual(query("/v1/purify/rounds", "post").part.schema.enum, [
    "model",
    "weights",
    "state",
    "report",
  ]);
  assert.ok(query("/v1/purify/schedule", "get").preset.schema.enum.includes("published"));
});

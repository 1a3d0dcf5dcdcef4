import assert from "node:assert/strict";
import { blobOf, fixtureBytes, fixtureForm, testApp } from "../_helpers.ts";

const TOKEN = "tok-3f9a1c77e2b84d0c9e51";
const MARK = "MODELBYTESa1b2c3d4e5";

/** Every line the app writes to the console while `fn` runs. */
async function consoleLines(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const saved = { log: console.log, error: console.error, warn: console.warn, info: console.info };
  const grab = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  Object.assign(console, { log: grab, error: grab, warn: grab, info: grab });
  try {
    await fn();
  } finally {
    Object.assign(console, saved);
  }
  return lines;
}

function form(model: Uint8Array, weights: Uint8Array, params: string): FormData {
  const f = new FormData();
  f.append("model", blobOf(model), "model.json");
  f.append("weights", blobOf(weights), "weights.bin");
  f.append("images", blobOf(fixtureBytes("x.npy")), "x.npy");
  f.append("params", params);
  return f;
}

Deno.test("access logs and error logs never echo the token, query strings or model bytes", async () => {
  const app = await testApp({ API_TOKEN: TOKEN, LOG_REQUESTS: "true" });
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const modelText = new TextDecoder().decode(fixtureBytes("model.json"));
  const weights = fixtureBytes("weights.bin");
  const marked = new Uint8Array([...weights.subarray(0, 64), ...new TextEncoder().encode(MARK)]);
  const statuses: number[] = [];
  const lines = await consoleLines(async () => {
    const send = async (path: string, init: RequestInit) => {
      const res = await app.request(path, init);
      statuses.push(res.status);
      await res.body?.cancel();
    };
    // Wrong and right tokens, in the header and (wrongly) in the query string.
    await send("/v1/predict", { method: "POST", headers: { Authorization: `Bearer ${TOKEN}x` } });
    await send(`/v1/predict?token=${TOKEN}&x=${MARK}`, { method: "POST" });
    await send(`/v1/predict?token=${TOKEN}`, {
      method: "POST",
      headers: auth,
      body: fixtureForm(),
    });
    // Marked bytes in a broken model.json, in its layer names, in the weights and in the params.
    await send("/v1/predict", {
      method: "POST",
      headers: auth,
      body: form(new TextEncoder().encode(`{"${MARK}": ${MARK}}`), weights, "{}"),
    });
    await send("/v1/predict", {
      method: "POST",
      headers: auth,
      body: form(new TextEncoder().encode(modelText.replace("conv2d", MARK)), weights, "{}"),
    });
    await send("/v1/predict", {
      method: "POST",
      headers: auth,
      body: form(fixtureBytes("model.json"), marked, "{}"),
    });
    await send("/v1/predict", {
      method: "POST",
      headers: { ...auth, "X-Request-Id": `Bearer ${TOKEN}` },
      body: form(fixtureBytes("model.json"), weights, `{"${MARK}": 1}`),
    });
  });
  assert.deepEqual(statuses, [401, 401, 200, 400, statuses[4], 422, 400]);
  assert.ok(statuses[4] < 500);
  assert.equal(lines.length, statuses.length, "one access-log line per request");
  for (const line of lines) {
    assert.ok(!line.includes(TOKEN), `token in log: ${line}`);
    assert.ok(!line.includes(MARK), `request bytes in log: ${line}`);
    assert.ok(!line.includes("?"), `query string in log: ${line}`);
  }
});

import assert from "node:assert/strict";
import { blobOf, errorCode, testApp } from "./_helpers.ts";
import { ConfigError, loadConfig } from "../src/config.ts";
import { timingSafeEqual } from "../src/http/auth.ts";

Deno.test("GET /healthz answers ok", async () => {
  const app = await testApp();
  const res = await app.request("/healthz");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ok" });
});

Deno.test("GET /readyz reports the backend, versions and limits but never the token", async () => {
  const app = await testApp({ API_TOKEN: "s3cret-token-0123456789" });
  const res = await app.request("/readyz");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.status, "ready");
  assert.equal(body.backend.name, Deno.env.get("BACKEND") ?? "wasm");
  assert.equal(body.versions.tfjs, "4.22.0");
  assert.equal(typeof body.limits.MAX_BODY_BYTES, "number");
  assert.equal(body.auth, true);
  assert.ok(!JSON.stringify(body).includes("s3cret"));
});

Deno.test("every response carries X-Request-Id, and a caller's safe id is kept", async () => {
  const app = await testApp();
  const a = await app.request("/healthz");
  assert.match(a.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  const b = await app.request("/healthz", { headers: { "X-Request-Id": "job-42.round-3" } });
  assert.equal(b.headers.get("x-request-id"), "job-42.round-3");
  const c = await app.request("/healthz", { headers: { "X-Request-Id": "bad id <script>" } });
  assert.match(c.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
});

Deno.test("unknown routes get a JSON 404 in the error shape", async () => {
  const app = await testApp();
  assert.equal(await errorCode(await app.request("/v1/nope"), 404), "not_found");
});

Deno.test("with API_TOKEN, /v1 needs the bearer token while health endpoints stay open", async () => {
  const app = await testApp({ API_TOKEN: "s3cret-token-0123456789" });
  assert.equal(
    await errorCode(await app.request("/v1/predict", { method: "POST" }), 401),
    "unauthorized",
  );
  const wrong = await app.request("/v1/predict", {
    method: "POST",
    headers: { Authorization: "Bearer s3cret-token-0123456780" },
  });
  assert.equal(await errorCode(wrong, 401), "unauthorized");
  for (const p of ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]) {
    assert.equal((await app.request(p)).status, 200, p);
  }
  const ok = await app.request("/v1/predict", {
    method: "POST",
    headers: { Authorization: "Bearer s3cret-token-0123456789" },
  });
  // Past auth, the missing multipart body is the next complaint.
  assert.equal(await errorCode(ok, 415), "unsupported_media_type");
});

Deno.test("timingSafeEqual compares exactly", () => {
  assert.equal(timingSafeEqual("abc", "abc"), true);
  assert.equal(timingSafeEqual("abc", "abd"), false);
  assert.equal(timingSafeEqual("abc", "abcd"), false);
  assert.equal(timingSafeEqual("", ""), true);
});

Deno.test("a body over MAX_BODY_BYTES is refused with 413", async () => {
  const app = await testApp({ MAX_BODY_BYTES: "2048" });
  const form = new FormData();
  form.append("model", blobOf(new Uint8Array(4096)), "model.json");
  const res = await app.request("/v1/predict", { method: "POST", body: form });
  assert.equal(await errorCode(res, 413), "limit_exceeded");
});

Deno.test("a non-multipart body to a compute endpoint is a 415", async () => {
  const app = await testApp();
  const res = await app.request("/v1/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  assert.equal(await errorCode(res, 415), "unsupported_media_type");
});

Deno.test("a truncated multipart body is a 400", async () => {
  const app = await testApp();
  const res = await app.request("/v1/predict", {
    method: "POST",
    headers: { "Content-Type": "multipart/form-data; boundary=xyz" },
    body: '--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nabc',
  });
  // Deno's parser either rejects the body or drops the unterminated part; both are a 400.
  assert.ok(["malformed_input", "missing_part"].includes(await errorCode(res, 400)));
});

Deno.test("GET /metrics is Prometheus text with per-route counts and tensor gauges", async () => {
  const app = await testApp();
  await app.request("/healthz");
  await app.request("/v1/nope");
  const res = await app.request("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  const text = await res.text();
  assert.match(text, /purifier_requests_total\{method="GET",route="\/healthz",status="200"\} 1/);
  assert.match(text, /status="404"/);
  assert.match(text, /^purifier_tensors \d+$/m);
  assert.match(text, /^purifier_tensor_bytes \d+$/m);
  assert.match(text, /purifier_request_duration_seconds_bucket\{.*le="\+Inf"\}/);
});

Deno.test("GET /openapi.json documents every route with params schemas from zod", async () => {
  const app = await testApp();
  const doc = await (await app.request("/openapi.json")).json();
  assert.equal(doc.openapi, "3.1.0");
  for (const p of ["/healthz", "/readyz", "/metrics", "/v1/predict"]) assert.ok(doc.paths[p], p);
  const params = doc.paths["/v1/predict"].post.requestBody.content["multipart/form-data"].schema
    .properties.params;
  assert.equal(params.properties.top_k.maximum, 1000);
  assert.equal(params.properties.top_k.default, 5);
});

Deno.test("GET /docs is a self-contained HTML page listing the endpoints", async () => {
  const app = await testApp();
  const res = await app.request("/docs");
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /\/v1\/predict/);
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href="http/);
});

Deno.test("loadConfig refuses bad values with a message naming the variable", () => {
  assert.throws(() => loadConfig({ PORT: "70000" }), (e: Error) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /PORT="70000"/);
    return true;
  });
  assert.throws(() => loadConfig({ BACKEND: "tpu" }), ConfigError);
  assert.throws(() => loadConfig({ MAX_BODY_BYTES: "lots" }), ConfigError);
  assert.throws(() => loadConfig({ API_TOKEN: "short" }), ConfigError);
  assert.equal(loadConfig({}).PORT, 8000);
  assert.equal(loadConfig({ PORT: "" }).PORT, 8000);
});

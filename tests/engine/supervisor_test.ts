/**
 * The supervisor, tested for real: the test-only `X-Engine-Fault` header (honoured only with
 * ENGINE_TEST_HOOKS=true) makes the engine worker trap in wasm, fail an allocation, die of an
 * uncaught error or spin without yielding; each test then watches the request's answer, /readyz,
 * the next request and /metrics.
 */
import assert from "node:assert/strict";
import { engineTensors, errorCode, fixtureForm, testApp } from "../_helpers.ts";

type App = Awaited<ReturnType<typeof testApp>>;

const HOOKS = { ENGINE_TEST_HOOKS: "true" };

function predict(app: App, fault?: string) {
  return app.request("/v1/predict", {
    method: "POST",
    body: fixtureForm(),
    headers: fault ? { "X-Engine-Fault": fault } : {},
  });
}

/** `purifier_engine_restarts_total{cause}` from /metrics. */
async function restarts(app: App, cause: string): Promise<number> {
  const text = await (await app.request("/metrics")).text();
  const m = new RegExp(`^purifier_engine_restarts_total\\{cause="${cause}"\\} (\\d+)$`, "m")
    .exec(text);
  return Number(m?.[1]);
}

/** Polls /readyz until it is 200; returns how many polls saw it not ready. */
async function untilReady(app: App, timeoutMs = 30_000): Promise<number> {
  const t0 = performance.now();
  let notReady = 0;
  for (;;) {
    const res = await app.request("/readyz");
    if (res.status === 200) return notReady;
    assert.equal(await errorCode(res, 503), "not_ready");
    assert.ok(Number(res.headers.get("retry-after")) >= 1, "a not-ready answer says when");
    notReady++;
    if (performance.now() - t0 > timeoutMs) throw new Error("no warm engine came back");
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("a job that traps the wasm engine gets a 422, /readyz dips and recovers, the next request is served, the restart is counted", async () => {
  const app = await testApp(HOOKS);
  const before = await restarts(app, "wasm_trap");
  const res = await predict(app, "trap");
  assert.equal(await errorCode(res, 422), "engine_trap");
  const dips = await untilReady(app);
  assert.ok(dips >= 1, "/readyz answered 503 while no warm engine existed");
  const next = await predict(app);
  assert.equal(next.status, 200);
  assert.equal((await next.json()).predictions.length, 64);
  assert.equal(await restarts(app, "wasm_trap"), before + 1);
  const health = await app.request("/healthz");
  assert.equal(health.status, 200, "liveness is the process, not the engine");
});

Deno.test("a job whose allocation fails replaces the engine and the next request is served", async () => {
  const app = await testApp(HOOKS);
  const before = await restarts(app, "out_of_memory");
  const res = await predict(app, "oom");
  // wasm: the job alone filled the engine's own heap (422); other backends share the process (503).
  if (app.engine.backend?.name === "wasm") {
    assert.equal(await errorCode(res, 422), "engine_out_of_memory");
  } else {
    assert.equal(await errorCode(res, 503), "engine_restarted");
  }
  assert.equal((await predict(app)).status, 200);
  assert.equal(await restarts(app, "out_of_memory"), before + 1);
});

Deno.test("a worker that dies mid-job answers 503 with Retry-After naming the restart, then serves", async () => {
  const app = await testApp(HOOKS);
  const before = await restarts(app, "died");
  const res = await predict(app, "die");
  assert.ok(Number(res.headers.get("retry-after")) >= 1);
  const body = await res.clone().json();
  assert.equal(await errorCode(res, 503), "engine_restarted");
  assert.equal(body.error.details.cause, "died");
  assert.equal((await predict(app)).status, 200);
  assert.equal(await restarts(app, "died"), before + 1);
});

Deno.test("a worker that never yields is terminated a grace period after its deadline, and the next request is served", async () => {
  const app = await testApp({ ...HOOKS, REQUEST_TIMEOUT_MS: "1000", ENGINE_GRACE_MS: "300" });
  const before = await restarts(app, "hung");
  const t0 = performance.now();
  const res = await predict(app, "hang");
  assert.equal(await errorCode(res, 504), "time_budget_exceeded");
  assert.ok(performance.now() - t0 < 2500, "the 504 is on time although the worker spins");
  // The spinning worker is terminated ENGINE_GRACE_MS after the deadline.
  for (let i = 0; i < 100 && await restarts(app, "hung") === before; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await restarts(app, "hung"), before + 1);
  await untilReady(app);
  assert.equal((await predict(app)).status, 200);
});

Deno.test("the fault header is ignored unless ENGINE_TEST_HOOKS is on", async () => {
  const app = await testApp();
  const res = await predict(app, "trap");
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("every job leaves the engine at its warm tensor count, counted in /metrics", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  for (let i = 0; i < 3; i++) assert.equal((await predict(app)).status, 200);
  const form = fixtureForm({ labels: true, params: { attack: "pgd", eps: 0.05, steps: 3 } });
  const attack = await app.request("/v1/attacks?format=json", { method: "POST", body: form });
  assert.equal(attack.status, 200);
  await attack.body?.cancel();
  assert.equal(engineTensors(app), before);
  assert.equal(app.engine.snapshot().leakedJobs, 0);
  const text = await (await app.request("/metrics")).text();
  assert.match(text, /^purifier_engine_leaked_jobs_total 0$/m);
  assert.match(text, /^purifier_engines_warm 1$/m);
});

Deno.test("after a job that grew an engine past its memory share, the engine is recycled between jobs", async () => {
  // 64 MiB × 0.5: a warm worker's own heap is already above 32 MiB, so every job recycles.
  const app = await testApp({ MEMORY_LIMIT_MB: "64", ENGINE_RECYCLE_SHARE: "0.5" });
  const before = await restarts(app, "memory_recycle");
  assert.equal((await predict(app)).status, 200);
  assert.equal((await predict(app)).status, 200);
  assert.equal(await restarts(app, "memory_recycle"), before + 2);
  await untilReady(app);
});

Deno.test("with ENGINE_WORKERS=2 two jobs run at once, each on its own engine", async () => {
  const app = await testApp({ ENGINE_WORKERS: "2" });
  const long = () =>
    fixtureForm({
      labels: true,
      params: { attack: "pgd", eps: 0.1, steps: 1000, restarts: 2, early_stop: false },
    });
  const ctls = [new AbortController(), new AbortController()];
  const running = ctls.map((ctl) =>
    app.request("/v1/attacks?format=json", { method: "POST", body: long(), signal: ctl.signal })
  );
  let busy = 0;
  for (let i = 0; i < 100 && busy < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
    busy = app.engine.snapshot().busy;
  }
  assert.equal(busy, 2);
  assert.match(await (await app.request("/metrics")).text(), /^purifier_engine_busy 2$/m);
  for (const ctl of ctls) ctl.abort();
  for (const r of await Promise.all(running)) {
    assert.equal(await errorCode(r, 499), "client_closed_request");
  }
  assert.equal((await predict(app)).status, 200);
});

Deno.test("a worker that never yields after its client left is terminated a grace period later", async () => {
  const app = await testApp({ ...HOOKS, ENGINE_GRACE_MS: "300" });
  const before = await restarts(app, "hung");
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(), 300);
  const res = await app.request("/v1/predict", {
    method: "POST",
    body: fixtureForm(),
    headers: { "X-Engine-Fault": "hang" },
    signal: ctl.signal,
  });
  assert.equal(await errorCode(res, 499), "client_closed_request");
  assert.equal(await restarts(app, "hung"), before + 1);
  await untilReady(app);
  assert.equal((await predict(app)).status, 200);
});

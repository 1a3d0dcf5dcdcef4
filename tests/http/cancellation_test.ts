import assert from "node:assert/strict";
import { engineTensors, errorCode, fixtureForm, testApp } from "../_helpers.ts";
import { EngineQueue } from "../../src/http/engine_queue.ts";

/** A PGD request that runs for seconds: 64 images × 1,000 steps × 2 restarts, no early stop. */
const longAttack = () =>
  fixtureForm({
    labels: true,
    params: { attack: "pgd", eps: 0.1, steps: 1000, restarts: 2, early_stop: false },
  });

/** Captures console.error while `fn` runs (the app logs unexpected errors there). */
async function capturingErrors<T>(fn: () => Promise<T> | T): Promise<{ out: T; logged: string[] }> {
  const logged: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => logged.push(a.map(String).join(" "));
  try {
    return { out: await fn(), logged };
  } finally {
    console.error = orig;
  }
}

Deno.test("a client that disconnects mid-attack stops the work early, frees its tensors and the engine", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const ctl = new AbortController();
  const t0 = performance.now();
  setTimeout(() => ctl.abort(), 400);
  const { out: res, logged } = await capturingErrors(() =>
    app.request("/v1/attacks?format=json", {
      method: "POST",
      body: longAttack(),
      signal: ctl.signal,
    })
  );
  const ms = performance.now() - t0;
  assert.equal(await errorCode(res, 499), "client_closed_request");
  // 2,000 steps take many seconds; the abort must be seen within a step or two of 400 ms.
  assert.ok(ms < 2000, `the attack ran ${ms.toFixed(0)} ms after being aborted at 400 ms`);
  assert.deepEqual(logged, [], "an abort is not an unexpected error");
  assert.equal(engineTensors(app), before);
  const next = await app.request("/v1/predict", { method: "POST", body: fixtureForm() });
  assert.equal(next.status, 200, "the engine is free again");
  assert.equal(engineTensors(app), before);
});

Deno.test("a queued request whose client leaves is dropped from the queue and never runs", async () => {
  const app = await testApp();
  const before = engineTensors(app);
  const first = new AbortController();
  const second = new AbortController();
  const running = app.request("/v1/attacks?format=json", {
    method: "POST",
    body: longAttack(),
    signal: first.signal,
  });
  let secondDone = 0;
  const t0 = performance.now();
  const queued = Promise.resolve(app.request("/v1/attacks?format=json", {
    method: "POST",
    body: longAttack(),
    signal: second.signal,
  })).then((r) => {
    secondDone = performance.now() - t0;
    return r;
  });
  setTimeout(() => second.abort(), 300);
  setTimeout(() => first.abort(), 900);
  const [a, b] = await Promise.all([running, queued]);
  assert.equal(await errorCode(b, 499), "client_closed_request");
  assert.ok(secondDone < 800, `the queued request answered at ${secondDone.toFixed(0)} ms`);
  assert.equal(await errorCode(a, 499), "client_closed_request");
  assert.equal(engineTensors(app), before);
});

Deno.test("a request past REQUEST_TIMEOUT_MS gets its 504 on time and its work stops", async () => {
  const app = await testApp({ REQUEST_TIMEOUT_MS: "1000" });
  const before = engineTensors(app);
  const t0 = performance.now();
  const { out: res, logged } = await capturingErrors(() =>
    app.request("/v1/attacks?format=json", { method: "POST", body: longAttack() })
  );
  const ms = performance.now() - t0;
  assert.equal(await errorCode(res, 504), "time_budget_exceeded");
  assert.ok(ms < 2500, `the 504 came after ${ms.toFixed(0)} ms for a 1,000 ms budget`);
  // The stopped job hands the engine on: the next request runs, and no tensor is left.
  const next = await app.request("/v1/predict", { method: "POST", body: fixtureForm() });
  assert.equal(next.status, 200);
  assert.equal(engineTensors(app), before);
  assert.deepEqual(logged, []);
});

Deno.test("beyond QUEUE_SIZE waiting requests the service answers 503 with Retry-After", async () => {
  const app = await testApp({ QUEUE_SIZE: "0", RETRY_AFTER_S: "7" });
  const ctl = new AbortController();
  const running = app.request("/v1/attacks?format=json", {
    method: "POST",
    body: longAttack(),
    signal: ctl.signal,
  });
  await new Promise((r) => setTimeout(r, 200));
  const shed = await app.request("/v1/predict", { method: "POST", body: fixtureForm() });
  assert.equal(shed.headers.get("retry-after"), "7");
  assert.equal(await errorCode(shed, 503), "saturated");
  ctl.abort();
  await (await running).body?.cancel();
});

Deno.test("EngineQueue refuses a job whose signal has already fired, and keeps serving after", async () => {
  const q = new EngineQueue(4, 1);
  const ctl = new AbortController();
  ctl.abort(new Error("gone"));
  let ran = false;
  await assert.rejects(q.run(() => Promise.resolve(ran = true), ctl.signal), /gone/);
  assert.equal(ran, false);
  assert.equal(q.busy, false);
  // A waiter whose signal fires after it was handed the engine passes the engine on.
  let release!: () => void;
  const holding = q.run(() => new Promise<void>((r) => release = r));
  const late = new AbortController();
  const waiting = q.run(() => Promise.resolve("ran"), late.signal);
  const third = q.run(() => Promise.resolve("third"));
  assert.equal(q.waiting, 2);
  release();
  late.abort(new Error("late"));
  await holding;
  const outcomes = await Promise.allSettled([waiting, third]);
  assert.equal(outcomes[1].status, "fulfilled");
  assert.equal(q.busy, false);
});

/**
 * The supervisor end to end over real HTTP: the service runs with ENGINE_TEST_HOOKS=true (never
 * in production), and each test-only fault (a wasm trap, an allocation failure, an uncaught error
 * in the worker, a worker that spins past its deadline) is sent once. For each: the failing
 * request's status and error code, how long `/readyz` answered 503 and how many times, the status
 * and latency of the next ordinary request, and finally the restart counters from `/metrics`.
 *
 *   deno run -A bench/engine_faults.ts
 */
import { startLocalService } from "../client/local_service.ts";

const FIX = new URL("../tests/fixtures/tiny_cnn/", import.meta.url);
const file = (n: string) => Deno.readFileSync(new URL(n, FIX));

function predictForm(): FormData {
  const f = new FormData();
  f.append("model", new Blob([file("model.json")]), "model.json");
  f.append("weights", new Blob([file("weights.bin")]), "weights.bin");
  f.append("images", new Blob([file("x.npy")]), "x.npy");
  return f;
}

const svc = await startLocalService({
  env: { ENGINE_TEST_HOOKS: "true", REQUEST_TIMEOUT_MS: "2000", ENGINE_GRACE_MS: "500" },
  logPath: "/tmp/engine_faults.log",
});
const rows = [];
try {
  for (const fault of ["trap", "oom", "die", "hang"]) {
    const t0 = performance.now();
    const res = await fetch(`${svc.url}/v1/predict`, {
      method: "POST",
      body: predictForm(),
      headers: { "X-Engine-Fault": fault },
    });
    const body = await res.json();
    const failedMs = performance.now() - t0;
    // /readyz until it is 200 again, every 10 ms.
    let notReady = 0, firstDip = -1, lastDip = -1;
    const w0 = performance.now();
    while (performance.now() - w0 < 10_000) {
      const r = await fetch(`${svc.url}/readyz`);
      await r.arrayBuffer();
      const at = performance.now() - w0;
      if (r.status === 503) {
        notReady++;
        if (firstDip < 0) firstDip = at;
        lastDip = at;
      } else if (notReady > 0 || at > 1500) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const n0 = performance.now();
    const next = await fetch(`${svc.url}/v1/predict`, { method: "POST", body: predictForm() });
    await next.arrayBuffer();
    rows.push({
      fault,
      failing: {
        status: res.status,
        code: body.error?.code,
        retry_after: res.headers.get("retry-after"),
        ms: Math.round(failedMs),
      },
      readyz_503: { polls: notReady, for_ms: notReady ? Math.round(lastDip - firstDip + 10) : 0 },
      next: { status: next.status, ms: Math.round(performance.now() - n0) },
    });
  }
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  console.log(JSON.stringify(
    {
      rows,
      restarts: metrics.split("\n").filter((l) => l.startsWith("purifier_engine_restarts_total")),
    },
    null,
    2,
  ));
} finally {
  await svc.stop();
}

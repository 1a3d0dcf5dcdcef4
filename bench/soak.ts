/**
 * Soak and load test, bounded in count and time, loopback only: starts the service with
 * `deno task start` on 127.0.0.1, sends a mix of valid and hostile requests (predict, attacks,
 * detect, evaluate, and bad inputs) first one at a time, then 8 at a time, and reports latency
 * percentiles, statuses, and the process's RSS and live tensor count (from /metrics) after a
 * warm-up, after the sequential phase and after the concurrent phase. Exits 1 when a request got
 * a 5xx, or when tensors (or RSS, beyond `--rss-slack`) grew between warm-up and the end. Live
 * tensors must come back exactly; RSS is noisier (V8's heap and the wasm memory keep their high
 * water mark, and 8 bodies in flight hold more than 1), hence the slack, 25% by default.
 *
 *   deno run -A bench/soak.ts [--requests 300] [--warmup 1000] [--concurrency 8] [--max-seconds 300]
 */
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    requests: { type: "string", default: "300" },
    warmup: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "8" },
    "max-seconds": { type: "string", default: "300" },
    "rss-slack": { type: "string", default: "0.25" },
    port: { type: "string", default: String(20000 + Math.floor(Math.random() * 20000)) },
  },
});
const REQUESTS = Math.min(5000, Number(a.requests));
const CONCURRENCY = Math.min(64, Number(a.concurrency));
const DEADLINE = performance.now() + Math.min(3600, Number(a["max-seconds"])) * 1000;
const BASE = `http://127.0.0.1:${a.port}`;
const ROOT = new URL("../", import.meta.url);
const FIX = new URL("tests/fixtures/tiny_cnn/", ROOT);
const file = (n: string) => Deno.readFileSync(new URL(n, FIX));
const MODEL = file("model.json"), WEIGHTS = file("weights.bin"), X = file("x.npy");
const Y = file("y.npy");

function form(parts: [string, Uint8Array | string, string?][]): FormData {
  const f = new FormData();
  for (const [name, v, fn] of parts) {
    if (typeof v === "string") f.append(name, v);
    else f.append(name, new Blob([v as Uint8Array<ArrayBuffer>]), fn ?? name);
  }
  return f;
}

const base = (): [string, Uint8Array | string, string?][] => [
  ["model", MODEL, "model.json"],
  ["weights", WEIGHTS, "weights.bin"],
  ["images", X, "x.npy"],
];

interface Kind {
  name: string;
  weight: number;
  /** Statuses this request should get; anything else counts as an error. */
  expect: number[];
  req: () => { path: string; init: RequestInit };
}

const post = (path: string, body: FormData | string, headers: Record<string, string> = {}) => ({
  path,
  init: { method: "POST", body, headers },
});

const KINDS: Kind[] = [
  {
    name: "predict",
    weight: 6,
    expect: [200],
    req: () => post("/v1/predict", form([...base(), ["params", '{"top_k":2}']])),
  },
  {
    name: "attack fgsm",
    weight: 3,
    expect: [200],
    req: () =>
      post(
        "/v1/attacks",
        form([...base(), ["labels", Y, "y.npy"], ["params", '{"attack":"fgsm","eps":0.05}']]),
      ),
  },
  {
    name: "attack pgd-10 (json)",
    weight: 2,
    expect: [200],
    req: () =>
      post(
        "/v1/attacks?format=json",
        form([...base(), ["labels", Y, "y.npy"], [
          "params",
          '{"attack":"pgd","eps":0.05,"steps":10}',
        ]]),
      ),
  },
  {
    name: "detect spectral",
    weight: 2,
    expect: [200],
    req: () =>
      post(
        "/v1/detect",
        form([...base(), ["labels", Y, "y.npy"], ["params", '{"method":"spectral"}']]),
      ),
  },
  {
    name: "evaluate",
    weight: 2,
    expect: [200],
    req: () => post("/v1/evaluate", form([...base(), ["labels", Y, "y.npy"], ["params", "{}"]])),
  },
  {
    name: "bad: truncated npy",
    weight: 1,
    expect: [400],
    req: () =>
      post(
        "/v1/predict",
        form([["model", MODEL, "model.json"], ["weights", WEIGHTS, "weights.bin"], [
          "images",
          X.subarray(0, X.length - 7),
          "x.npy",
        ]]),
      ),
  },
  {
    name: "bad: model not JSON",
    weight: 1,
    expect: [400],
    req: () =>
      post(
        "/v1/predict",
        form([["model", new TextEncoder().encode("{nope"), "model.json"], [
          "weights",
          WEIGHTS,
          "weights.bin",
        ], ["images", X, "x.npy"]]),
      ),
  },
  {
    name: "bad: JSON body",
    weight: 1,
    expect: [415],
    req: () => post("/v1/predict", "{}", { "content-type": "application/json" }),
  },
  {
    name: "bad: missing weights",
    weight: 1,
    expect: [400, 422],
    req: () => post("/v1/predict", form([["model", MODEL, "model.json"], ["images", X, "x.npy"]])),
  },
  {
    name: "bad: params out of range",
    weight: 1,
    expect: [400],
    req: () =>
      post(
        "/v1/attacks",
        form([...base(), ["labels", Y, "y.npy"], ["params", '{"attack":"pgd","eps":7}']]),
      ),
  },
  {
    name: "bad: unknown route",
    weight: 1,
    expect: [404],
    req: () => ({ path: "/v1/nothing", init: { method: "GET" } }),
  },
];

const TOTAL_WEIGHT = KINDS.reduce((s, k) => s + k.weight, 0);
/** Deterministic mix: request i gets kind by a fixed stride over the weights. */
function kindOf(i: number): Kind {
  let r = (i * 7919) % TOTAL_WEIGHT;
  for (const k of KINDS) {
    if (r < k.weight) return k;
    r -= k.weight;
  }
  return KINDS[0];
}

interface Sample {
  kind: string;
  status: number;
  ms: number;
  ok: boolean;
}

async function one(i: number): Promise<Sample> {
  const k = kindOf(i);
  const { path, init } = k.req();
  const t0 = performance.now();
  let status = 0;
  try {
    const res = await fetch(BASE + path, init);
    await res.arrayBuffer();
    status = res.status;
  } catch {
    status = -1; // connection error
  }
  const ms = performance.now() - t0;
  return { kind: k.name, status, ms, ok: k.expect.includes(status) };
}

async function metrics(): Promise<{ tensors: number; rss: number }> {
  const text = await (await fetch(`${BASE}/metrics`)).text();
  const get = (n: string) => Number(new RegExp(`^${n} (\\S+)$`, "m").exec(text)?.[1]);
  return { tensors: get("purifier_tensors"), rss: get("purifier_rss_bytes") };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

function summary(label: string, samples: Sample[], wallMs: number) {
  const ms = samples.map((s) => s.ms);
  const byStatus: Record<string, number> = {};
  for (const s of samples) byStatus[s.status] = (byStatus[s.status] ?? 0) + 1;
  const unexpected = samples.filter((s) => !s.ok);
  return {
    phase: label,
    requests: samples.length,
    wall_s: +(wallMs / 1000).toFixed(1),
    throughput_rps: +(samples.length / (wallMs / 1000)).toFixed(2),
    latency_ms: {
      p50: Math.round(pct(ms, 50)),
      p90: Math.round(pct(ms, 90)),
      p99: Math.round(pct(ms, 99)),
      max: Math.round(Math.max(...ms)),
    },
    by_status: byStatus,
    unexpected: unexpected.length,
    unexpected_examples: unexpected.slice(0, 5).map((s) => `${s.kind}: ${s.status}`),
    by_kind_p50_ms: Object.fromEntries(
      KINDS.map((
        k,
      ) => [
        k.name,
        Math.round(pct(samples.filter((s) => s.kind === k.name).map((s) => s.ms), 50)),
      ]),
    ),
  };
}

async function phase(label: string, n: number, concurrency: number, offset: number) {
  const samples: Sample[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n && performance.now() < DEADLINE) {
      const i = offset + next++;
      samples.push(await one(i));
    }
  }));
  return summary(label, samples, performance.now() - t0);
}

const child = new Deno.Command(Deno.execPath(), {
  args: ["task", "--quiet", "start"],
  cwd: ROOT,
  env: { PORT: a.port!, HOST: "127.0.0.1", LOG_REQUESTS: "false", QUEUE_SIZE: "64" },
  stdout: "null",
  stderr: "inherit",
}).spawn();
let failed = false;
try {
  for (let i = 0; i < 600; i++) {
    if (await fetch(`${BASE}/readyz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const ready = await (await fetch(`${BASE}/readyz`)).json();
  // Warm-up, both ways: the first thousand or so requests grow V8's heap and the wasm memory
  // (which never shrinks) to their working size; the figures start after it.
  const warm = Math.min(5000, Number(a.warmup));
  await phase("warm-up", warm / 2, 1, 0);
  await phase("warm-up", warm / 2, CONCURRENCY, 500_000);
  const start = await metrics();
  const seq = await phase("sequential", REQUESTS, 1, 1000);
  const mid = await metrics();
  const conc = await phase(`concurrent x${CONCURRENCY}`, REQUESTS, CONCURRENCY, 100_000);
  const end = await metrics();
  const mib = (b: number) => +(b / 2 ** 20).toFixed(1);
  const report = {
    backend: ready.backend?.name,
    phases: [seq, conc],
    memory: {
      after_warmup: { tensors: start.tensors, rss_mib: mib(start.rss) },
      after_sequential: { tensors: mid.tensors, rss_mib: mib(mid.rss) },
      end: { tensors: end.tensors, rss_mib: mib(end.rss) },
      rss_growth: +((end.rss - start.rss) / start.rss).toFixed(3),
    },
    truncated_by_time: performance.now() >= DEADLINE,
  };
  console.log(JSON.stringify(report, null, 2));
  const fivexx = [seq, conc].some((p) =>
    Object.keys(p.by_status).some((s) => Number(s) >= 500 || Number(s) < 0)
  );
  if (fivexx) console.error("FAIL: 5xx or connection errors");
  if (end.tensors !== start.tensors) console.error("FAIL: live tensors grew");
  if (report.memory.rss_growth > Number(a["rss-slack"])) console.error("FAIL: RSS grew");
  failed = fivexx || end.tensors !== start.tensors ||
    report.memory.rss_growth > Number(a["rss-slack"]);
} finally {
  child.kill("SIGTERM");
  await child.status;
}
Deno.exit(failed ? 1 : 0);

/**
 * Soak and load test, bounded in count and time, loopback only: starts the service with
 * `deno task start` on 127.0.0.1, sends a mix of valid and hostile requests (predict, attacks,
 * detect, evaluate, large images, a large batch, and bad inputs) first one at a time, then 8 at a
 * time, and reports latency percentiles, statuses, and the process's RSS and live tensor count
 * (from /metrics) at start (ready, before any request), after a warm-up, after the sequential
 * phase and at the end, plus the peak RSS (sampled every 200 ms) and the engine restarts by cause.
 * Exits 1 when a request got a 5xx, or when tensors (or RSS, beyond `--rss-slack`) grew between
 * warm-up and the end. Live tensors must come back exactly; RSS is noisier (V8's heap keeps its
 * high-water mark, and 8 bodies in flight hold more than 1), hence the slack, 25% by default.
 *
 * Engine recycling: the wasm heap never shrinks, so without recycling the RSS stays at the
 * largest job's high-water mark. `--recycle-share` (ENGINE_RECYCLE_SHARE, 0 = off) and
 * `--memory-limit-mb` (MEMORY_LIMIT_MB) set when an engine is replaced between jobs.
 *
 *   deno run -A bench/soak.ts [--requests 300] [--warmup 1000] [--concurrency 8] [--max-seconds 300]
 *     [--recycle-share 0.25] [--memory-limit-mb 1024] [--workers 1]
 */
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    requests: { type: "string", default: "300" },
    warmup: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "8" },
    "max-seconds": { type: "string", default: "300" },
    "rss-slack": { type: "string", default: "0.25" },
    "recycle-share": { type: "string", default: "0.25" },
    "memory-limit-mb": { type: "string", default: "1024" },
    workers: { type: "string", default: "1" },
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
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";

/** A 2000×2000 noisy RGB JPEG (decoded in the engine, then refused: the model takes 10×10×1). */
const BIG_JPEG = (() => {
  const side = 2000, data = new Uint8Array(side * side * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  return jpeg.encode({ data, width: side, height: side }, 85).data;
})();
/** A 3000×3000 all-zero RGB PNG: ~30 KB that inflate to 27 MB of pixels. */
const BIG_PNG = encodePng({
  width: 3000,
  height: 3000,
  channels: 3,
  depth: 8,
  data: new Uint8Array(3000 * 3000 * 3),
});
/** 20,000 images of the model's size as one .npy: a large batch through the wasm heap. */
const BIG_BATCH = (() => {
  const n = 20_000;
  const header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${n}, 10, 10, 1), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  const h = new TextEncoder().encode(header + " ".repeat(pad % 64) + "\n");
  const out = new Uint8Array(10 + h.length + n * 100);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8]);
  out.set(h, 10);
  for (let i = 10 + h.length; i < out.length; i++) out[i] = (i * 40503) & 0xff;
  return out;
})();

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
    name: "large JPEG (decoded, wrong shape)",
    weight: 1,
    expect: [422],
    req: () =>
      post(
        "/v1/predict",
        form([["model", MODEL, "model.json"], ["weights", WEIGHTS, "weights.bin"], [
          "images",
          BIG_JPEG,
          "big.jpg",
        ]]),
      ),
  },
  {
    name: "large PNG (decoded, wrong shape)",
    weight: 1,
    expect: [422],
    req: () =>
      post(
        "/v1/predict",
        form([["model", MODEL, "model.json"], ["weights", WEIGHTS, "weights.bin"], [
          "images",
          BIG_PNG,
          "big.png",
        ]]),
      ),
  },
  {
    name: "large batch (20k images)",
    weight: 1,
    expect: [200],
    req: () =>
      post(
        "/v1/predict",
        form([["model", MODEL, "model.json"], ["weights", WEIGHTS, "weights.bin"], [
          "images",
          BIG_BATCH,
          "big.npy",
        ], ["params", '{"top_k":1,"batch_size":4096}']]),
      ),
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

async function metrics(): Promise<{
  tensors: number;
  rss: number;
  http: number;
  engines: number;
  warm: number;
  restarts: Record<string, number>;
}> {
  const text = await (await fetch(`${BASE}/metrics`)).text();
  const get = (n: string) => Number(new RegExp(`^${n} (\\S+)$`, "m").exec(text)?.[1]);
  const restarts: Record<string, number> = {};
  for (const m of text.matchAll(/^purifier_engine_restarts_total\{cause="(\w+)"\} (\d+)$/gm)) {
    restarts[m[1]] = Number(m[2]);
  }
  return {
    tensors: get("purifier_tensors"),
    rss: get("purifier_rss_bytes"),
    http: get("purifier_http_heap_bytes") + get("purifier_http_external_bytes"),
    engines: get("purifier_engine_memory_bytes"),
    warm: get("purifier_engines_warm"),
    restarts,
  };
}

/** Metrics once every engine is warm again (a recycled one may still be starting). */
async function settledMetrics() {
  for (let i = 0; i < 100; i++) {
    const m = await metrics();
    if (m.warm === Number(a.workers)) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
  return await metrics();
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
  env: {
    PORT: a.port!,
    HOST: "127.0.0.1",
    LOG_REQUESTS: "false",
    QUEUE_SIZE: "64",
    ENGINE_RECYCLE_SHARE: a["recycle-share"]!,
    MEMORY_LIMIT_MB: a["memory-limit-mb"]!,
    ENGINE_WORKERS: a.workers!,
  },
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
  const initial = await settledMetrics();
  let peak = initial.rss;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, (await metrics()).rss);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  // Warm-up, both ways: the first thousand or so requests grow V8's heap and the wasm memory
  // (which never shrinks) to their working size; the figures start after it.
  const warm = Math.min(5000, Number(a.warmup));
  await phase("warm-up", warm / 2, 1, 0);
  await phase("warm-up", warm / 2, CONCURRENCY, 500_000);
  const start = await settledMetrics();
  const seq = await phase("sequential", REQUESTS, 1, 1000);
  const mid = await settledMetrics();
  const conc = await phase(`concurrent x${CONCURRENCY}`, REQUESTS, CONCURRENCY, 100_000);
  const end = await settledMetrics();
  sampling = false;
  await sampler;
  const mib = (b: number) => +(b / 2 ** 20).toFixed(1);
  const report = {
    backend: ready.backend?.name,
    phases: [seq, conc],
    engine: {
      workers: Number(a.workers),
      recycle_share: Number(a["recycle-share"]),
      memory_limit_mb: Number(a["memory-limit-mb"]),
      restarts: end.restarts,
    },
    memory: {
      start: {
        tensors: initial.tensors,
        rss_mib: mib(initial.rss),
        http_thread_mib: mib(initial.http),
        engines_mib: mib(initial.engines),
      },
      peak_rss_mib: mib(peak),
      end_vs_start: +((end.rss - initial.rss) / initial.rss).toFixed(3),
      after_warmup: { tensors: start.tensors, rss_mib: mib(start.rss) },
      after_sequential: { tensors: mid.tensors, rss_mib: mib(mid.rss) },
      end: {
        tensors: end.tensors,
        rss_mib: mib(end.rss),
        http_thread_mib: mib(end.http),
        engines_mib: mib(end.engines),
      },
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

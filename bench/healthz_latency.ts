/**
 * `/healthz` latency while the engine is busy: the service is started on loopback, and while
 * each job below runs, `/healthz` is asked back to back (one at a time, 2 ms apart); the report
 * gives p50, p99 and max per phase, and each job's own duration and status. The jobs: nothing
 * (baseline), a purification round (training), a large JPEG, an 8-bit PNG that inflates from a
 * few KB to 48 MB of pixels (decoded, then refused for its shape), and a 16-bit RGBA PNG of
 * 8000×8000 (refused from its header). Image decoding runs in the engine worker, so the HTTP
 * thread's answers stay in milliseconds.
 *
 *   deno run -A bench/healthz_latency.ts [--round-ms 4000]
 */
import { parseArgs } from "node:util";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { startLocalService } from "../client/local_service.ts";

const { values: a } = parseArgs({ options: { "round-ms": { type: "string", default: "4000" } } });
const FIX = new URL("../tests/fixtures/tiny_cnn/", import.meta.url);
const file = (n: string) => Deno.readFileSync(new URL(n, FIX));
const MODEL = file("model.json"), WEIGHTS = file("weights.bin");

function form(parts: [string, Uint8Array | string, string?][]): FormData {
  const f = new FormData();
  f.append("model", new Blob([MODEL]), "model.json");
  f.append("weights", new Blob([WEIGHTS]), "weights.bin");
  for (const [k, v, n] of parts) {
    if (typeof v === "string") f.append(k, v);
    else f.append(k, new Blob([v as Uint8Array<ArrayBuffer>]), n ?? k);
  }
  return f;
}

function bigJpeg(side: number): Uint8Array {
  const data = new Uint8Array(side * side * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  return jpeg.encode({ data, width: side, height: side }, 90).data;
}

const zerosPng = encodePng({
  width: 4000,
  height: 4000,
  channels: 3,
  depth: 8,
  data: new Uint8Array(4000 * 4000 * 3),
});
const bomb16 = encodePng({
  width: 8000,
  height: 8000,
  channels: 4,
  depth: 16,
  data: new Uint16Array(8000 * 8000 * 4),
});
const jpg = bigJpeg(3000);

const JOBS: { name: string; bytes?: number; body?: () => FormData; path?: string }[] = [
  { name: "idle" },
  {
    name: `purification round (max_ms ${a["round-ms"]})`,
    path: "/v1/purify/rounds",
    body: () =>
      form([
        ["images", file("x.npy"), "x.npy"],
        ["labels", file("y.npy"), "y.npy"],
        ["params", JSON.stringify({ max_ms: Number(a["round-ms"]), max_steps: 100_000 })],
      ]),
  },
  {
    name: "JPEG 3000×3000 RGB",
    bytes: jpg.byteLength,
    body: () => form([["images", jpg, "big.jpg"]]),
  },
  {
    name: "PNG 4000×4000 RGB zeros (48 MB decoded)",
    bytes: zerosPng.byteLength,
    body: () => form([["images", zerosPng, "zeros.png"]]),
  },
  {
    name: "PNG 8000×8000 RGBA 16-bit (512 MB decoded)",
    bytes: bomb16.byteLength,
    body: () => form([["images", bomb16, "bomb.png"]]),
  },
];

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const svc = await startLocalService({ logPath: "/tmp/healthz_latency.log" });
const rows = [];
try {
  for (const job of JOBS) {
    const lat: number[] = [];
    let done = false;
    let status = 0;
    const t0 = performance.now();
    const work = job.body
      ? fetch(`${svc.url}${job.path ?? "/v1/predict"}`, { method: "POST", body: job.body() })
        .then(async (r) => {
          status = r.status;
          await r.arrayBuffer();
        })
      : new Promise<void>((r) => setTimeout(r, 2000));
    work.finally(() => done = true);
    while (!done) {
      const s = performance.now();
      await (await fetch(`${svc.url}/healthz`)).arrayBuffer();
      lat.push(performance.now() - s);
      await new Promise((r) => setTimeout(r, 2));
    }
    await work;
    rows.push({
      job: job.name,
      upload_bytes: job.bytes,
      job_status: status || undefined,
      job_ms: Math.round(performance.now() - t0),
      healthz: {
        n: lat.length,
        p50_ms: +pct(lat, 50).toFixed(1),
        p99_ms: +pct(lat, 99).toFixed(1),
        max_ms: +Math.max(...lat).toFixed(1),
      },
    });
  }
} finally {
  await svc.stop();
}
console.log(JSON.stringify({ cores: navigator.hardwareConcurrency, rows }, null, 2));

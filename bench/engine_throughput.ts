/**
 * Throughput of concurrent attack jobs with ENGINE_WORKERS=1 and =2: starts the service once per
 * setting (loopback), sends `--jobs` PGD attacks at once (the tiny fixture, 64 images, `--steps`
 * steps, no early stop), and reports the wall time of the batch and jobs per second; then the
 * ratio. On a host with a free core per engine the ratio approaches the engine count.
 *
 *   deno run -A bench/engine_throughput.ts [--jobs 4] [--steps 60] [--workers 1,2]
 */
import { parseArgs } from "node:util";
import { startLocalService } from "../client/local_service.ts";

const { values: a } = parseArgs({
  options: {
    jobs: { type: "string", default: "4" },
    steps: { type: "string", default: "60" },
    workers: { type: "string", default: "1,2" },
  },
});
const FIX = new URL("../tests/fixtures/tiny_cnn/", import.meta.url);
const file = (n: string) => Deno.readFileSync(new URL(n, FIX));
const parts: [string, Uint8Array, string][] = [
  ["model", file("model.json"), "model.json"],
  ["weights", file("weights.bin"), "weights.bin"],
  ["images", file("x.npy"), "x.npy"],
  ["labels", file("y.npy"), "y.npy"],
];
const params = JSON.stringify({
  attack: "pgd",
  eps: 0.05,
  steps: Number(a.steps),
  early_stop: false,
});

function attackForm(): FormData {
  const f = new FormData();
  for (const [k, v, n] of parts) f.append(k, new Blob([v as Uint8Array<ArrayBuffer>]), n);
  f.append("params", params);
  return f;
}

const rows: { workers: number; jobs: number; wall_s: number; jobs_per_s: number }[] = [];
for (const workers of a.workers!.split(",").map(Number)) {
  const svc = await startLocalService({
    env: { ENGINE_WORKERS: String(workers), QUEUE_SIZE: "64" },
    logPath: `/tmp/engine_throughput_${workers}.log`,
  });
  try {
    // One job first, so neither setting pays for first-use kernel set-up in the timing.
    for (let w = 0; w < workers; w++) {
      await (await fetch(`${svc.url}/v1/attacks?format=json`, {
        method: "POST",
        body: attackForm(),
      })).arrayBuffer();
    }
    const t0 = performance.now();
    const statuses = await Promise.all(
      Array.from({ length: Number(a.jobs) }, async () => {
        const r = await fetch(`${svc.url}/v1/attacks?format=json`, {
          method: "POST",
          body: attackForm(),
        });
        await r.arrayBuffer();
        return r.status;
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    if (statuses.some((s) => s !== 200)) throw new Error(`statuses ${statuses}`);
    rows.push({
      workers,
      jobs: statuses.length,
      wall_s: +wall.toFixed(2),
      jobs_per_s: +(statuses.length / wall).toFixed(3),
    });
  } finally {
    await svc.stop();
  }
}
const base = rows[0];
console.log(JSON.stringify(
  {
    cores: navigator.hardwareConcurrency,
    steps: Number(a.steps),
    rows,
    throughput_ratio: rows.map((r) => +(r.jobs_per_s / base.jobs_per_s).toFixed(2)),
  },
  null,
  2,
));

/**
 * The service on WebGPU end to end through HTTP, what a GPU host runs to report round time:
 * starts `src/main.ts` with BACKEND=webgpu on a free loopback port (or targets `--url`), then, on a
 * lab folder (`deno task lab` output: model bundle, extra_x/extra_y, test_x/test_y[, test_bd_*]),
 * runs with the project's client: detection of the extra set (`--detect`, default spectral),
 * evaluation of the infected model (clean accuracy, ASR; robust accuracy with `--robust-images`),
 * a full purification (`--schedule`, default `default`: every round through
 * `POST /v1/purify/rounds`) and the purified model's evaluation. Prints each step's wall time,
 * the rounds and the mean round time, and one JSON line.
 *
 *   deno task lab -- --out out/lab
 *   deno run -A bench/webgpu_http.ts out/lab [--url http://host:8000] [--schedule default]
 *     [--detect '{"method":"spectral"}'] [--robust-images 0] [--out out/webgpu_http]
 *     [--backend webgpu]
 *
 * `--schedule` takes a preset name or a schedule JSON file (as GET /v1/purify/schedule returns it).
 * `--backend wasm` runs the same flow on wasm, for the side-by-side wall time.
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { readBundleDir } from "../client/bundle_files.ts";
import { runDetection } from "../client/detection.ts";
import { evaluateModel, readEvalSet } from "../client/evaluate.ts";
import { DEFAULT_RETRY } from "../client/http.ts";
import { startLocalService } from "../client/local_service.ts";
import { runPurification } from "../client/purify.ts";

const { values: a, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    schedule: { type: "string", default: "default" },
    detect: { type: "string", default: '{"method":"spectral"}' },
    "robust-images": { type: "string", default: "0" },
    out: { type: "string", default: "out/webgpu_http" },
    backend: { type: "string", default: "webgpu" },
    seed: { type: "string", default: "1" },
  },
});
if (positionals.length !== 1) {
  console.error("usage: deno run -A bench/webgpu_http.ts LAB_DIR [--url URL] [--schedule NAME]");
  Deno.exit(2);
}
const labDir = resolve(positionals[0]);
await Deno.mkdir(a.out!, { recursive: true });
const started = a.url ? undefined : await startLocalService({
  env: { BACKEND: a.backend! },
  logPath: join(a.out!, "server.log"),
  timeoutMs: 300_000,
});
const server = a.url ?? started!.url;
const steps: { step: string; seconds: number }[] = [];
async function timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const out = await fn();
  const seconds = (performance.now() - t0) / 1000;
  steps.push({ step, seconds });
  console.error(`${step}: ${seconds.toFixed(1)} s`);
  return out;
}
try {
  const ready = await (await fetch(`${server}/readyz`)).json();
  const backend = ready.backend?.name, adapter = ready.backend?.adapter;
  console.error(`server ${server}: backend ${backend}${adapter ? ` (${adapter})` : ""}`);
  const model = await readBundleDir(labDir);
  const [images, labels] = await Promise.all([
    Deno.readFile(join(labDir, "extra_x.npy")),
    Deno.readFile(join(labDir, "extra_y.npy")),
  ]);
  const set = await readEvalSet(labDir);
  const robustN = Number(a["robust-images"]);
  const robust = robustN > 0 ? { max_images: robustN } : undefined;
  const det = await timed("detect", () =>
    runDetection({
      server,
      model,
      images,
      labels,
      params: JSON.parse(a.detect!),
      retry: DEFAULT_RETRY,
    }));
  const before = await timed(
    "evaluate (infected)",
    () => evaluateModel(server, model, set, { robust }, DEFAULT_RETRY),
  );
  const outDir = join(a.out!, "purify");
  const schedule = a.schedule!.endsWith(".json")
    ? JSON.parse(await Deno.readTextFile(a.schedule!))
    : a.schedule;
  const outcome = await timed("purification", () =>
    runPurification({
      server,
      modelDir: labDir,
      images: join(labDir, "extra_x.npy"),
      labels: join(labDir, "extra_y.npy"),
      out: outDir,
      params: {
        schedule,
        seed: Number(a.seed),
      },
      maxRounds: 100_000,
      resume: false,
      quiet: true,
    }));
  const purified = await readBundleDir(join(outDir, "purified"));
  const after = await timed(
    "evaluate (purified)",
    () => evaluateModel(server, purified, set, { robust }, DEFAULT_RETRY),
  );
  const roundS = steps.find((s) => s.step === "purification")!.seconds / outcome.rounds;
  const pick = (r: Record<string, unknown>) => ({
    clean_accuracy: r.clean_accuracy ?? r.accuracy,
    attack_success_rate: r.attack_success_rate,
    robust_accuracy: r.robust_accuracy,
  });
  console.log(`| step | wall s |  (backend ${backend}${adapter ? `, ${adapter}` : ""})`);
  console.log("|---|---|");
  for (const s of steps) console.log(`| ${s.step} | ${s.seconds.toFixed(1)} |`);
  console.log(`| mean round (${outcome.rounds} rounds) | ${roundS.toFixed(2)} |`);
  console.log(JSON.stringify({
    backend,
    adapter,
    schedule: a.schedule,
    steps,
    rounds: outcome.rounds,
    done: outcome.done,
    mean_round_s: roundS,
    detect: {
      method: det.section.method,
      n: det.section.n,
      flagged: det.section.flagged,
      suspected_target: det.section.suspected_target,
    },
    infected: pick(before),
    purified: pick(after),
  }));
} finally {
  await started?.stop();
}

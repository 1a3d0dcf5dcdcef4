/**
 * Memory and HTTP overhead of one purification round (`POST /v1/purify/rounds`' code path, run
 * in-process): the small CNN of bench/small_cnn.ts, a 2,000-image 28×28×1 extra set, the default
 * schedule, on the wasm backend (or `--backend`).
 *
 * 1. Parsing, timed per stage, exactly as routes/purify.ts does it: the multipart body through
 *    `Request.formData()` (`readForm`), the model bundle (`parseBundle` via `readBundle`), loading
 *    it (`loadModel`), the images `.npy` (`parseNpy` + `imagesFromNpy` via `readImages`) and the
 *    labels; reported as a share of the round's time.
 * 2. One round (`runRound`), with its own budget (`--max-ms`, `--max-steps`).
 * 3. Peak RSS (VmHWM, reset through /proc/self/clear_refs once the backend is warm, so the peak is
 *    this request's) against the sum of model, data and activation bytes (formulas printed).
 *
 *   deno run -A bench/round_memory.ts [--n 2000] [--max-ms 20000] [--max-steps 2000]
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { loadConfig } from "../src/config.ts";
import { readForm } from "../src/http/form.ts";
import { loadModel, readBundle, readImages, readLabels } from "../src/http/inputs.ts";
import { encodeNpy } from "../src/io/npy.ts";
import { saveBundle } from "../src/io/model_bundle.ts";
import { parseRoundParams } from "../src/purify/params.ts";
import { runRound } from "../src/purify/round.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";
import { peakRssMiB, rssMiB } from "./rss.ts";
import { smallCnn } from "./small_cnn.ts";

const { values: args } = parseArgs({
  options: {
    backend: { type: "string", default: Deno.env.get("BACKEND") ?? "wasm" },
    n: { type: "string", default: "2000" },
    "max-ms": { type: "string", default: "20000" },
    "max-steps": { type: "string", default: "2000" },
  },
});
const N = Number(args.n);
const MiB = 2 ** 20;

/** Resets VmHWM to the current RSS (Linux ≥ 4.0); false where /proc does not allow it. */
function resetPeak(): boolean {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

function wasmHeapMiB(): number | undefined {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8 ? b.wasm.HEAPU8.byteLength / MiB : undefined;
}

const info = await initBackend(args.backend as BackendName);
const config = loadConfig({ LOG_REQUESTS: "false" });

// The request, built the way a client sends it: uint8 .npy images, int32 labels, the bundle.
const pixels = new Uint8Array(N * 28 * 28);
let s = 12345;
for (let i = 0; i < pixels.length; i++) {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  pixels[i] = s >>> 24;
}
const labels = Int32Array.from({ length: N }, (_, i) => i % 10);
const model = smallCnn();
const params = model.countParams();
const bundle = await saveBundle(model);
// Activations per layer output, for the largest batch the schedule trains or attacks with.
const outputs = model.layers.map((l) =>
  (l.outputShape as number[]).slice(1).reduce((a, b) => a * b)
);
model.dispose();
const form = new FormData();
const npy = encodeNpy({ dtype: "uint8", shape: [N, 28, 28, 1], data: pixels });
form.append("model", new Blob([bundle.modelJson as BlobPart]), "model.json");
for (const w of bundle.weights) form.append("weights", new Blob([w.bytes as BlobPart]), w.name);
form.append("images", new Blob([npy as BlobPart]), "x.npy");
form.append(
  "labels",
  new Blob([encodeNpy({ dtype: "int32", shape: [N], data: labels }) as BlobPart]),
  "y.npy",
);
const roundParams = { max_ms: Number(args["max-ms"]), max_steps: Number(args["max-steps"]) };
form.append("params", JSON.stringify(roundParams));
const encoded = new Response(form);
const contentType = encoded.headers.get("content-type")!;
const body = new Uint8Array(await encoded.arrayBuffer());
const bodyBytes = body.byteLength;

/**
 * Tracks the most tensor bytes alive at once (model, data, activations, gradients and kernel
 * scratch), by watching the wasm backend's allocations; tfjs reports only the current figure.
 */
let peakLive = tf.memory().numBytes;
const be = tf.backend() as unknown as { makeOutput?: (...a: unknown[]) => unknown };
if (be.makeOutput) {
  const make = be.makeOutput.bind(be);
  be.makeOutput = (...a: unknown[]) => {
    const out = make(...a);
    peakLive = Math.max(peakLive, tf.memory().numBytes);
    return out;
  };
}
const liveBefore = tf.memory().numBytes;

const baseRss = rssMiB();
const baseHeap = Deno.memoryUsage();
const baseWasm = wasmHeapMiB();
const peakReset = resetPeak();

const t: Record<string, number> = {};
const lap = (name: string, t0: number) => (t[name] = performance.now() - t0);
let t0 = performance.now();
const req = new Request("http://localhost/v1/purify/rounds", {
  method: "POST",
  headers: { "content-type": contentType },
  body,
});
const f = await readForm(req, { maxParts: config.MAX_PARTS });
lap("multipart (Request.formData)", t0);
t0 = performance.now();
const parsed = await readBundle(f, config);
lap("model bundle (parseBundle)", t0);
t0 = performance.now();
const clf = await loadModel(parsed);
lap("model load (loadModel)", t0);
t0 = performance.now();
const images = await readImages(f, config, "images", 1);
lap("images .npy (parseNpy + imagesFromNpy)", t0);
t0 = performance.now();
const y = (await readLabels(f, "labels", { count: N, numClasses: 10 }))!;
lap("labels .npy", t0);
const parseMs = Object.values(t).reduce((a, b) => a + b, 0);

t0 = performance.now();
const result = await runRound(clf, images, y, parseRoundParams(roundParams), undefined, {
  maxSteps: Math.min(config.MAX_ROUND_STEPS, roundParams.max_steps),
  maxMs: Math.min(config.MAX_ROUND_MS, roundParams.max_ms),
});
const roundMs = performance.now() - t0;
t0 = performance.now();
const saved = await clf.save();
const saveMs = performance.now() - t0;
const peak = peakRssMiB();
const heap = Deno.memoryUsage();
const wasmAfter = wasmHeapMiB();
clf.dispose();

const schedule = result.state.schedule as { stages: { batch_size?: number }[] };
const batch = Math.max(128, ...schedule.stages.map((st) => st.batch_size ?? 0));
const modelBytes = params * 4;
// The round holds the model, its momentum buffer and the reference/teacher copies it may need.
const modelCopies = 4;
const dataBytes = bodyBytes + images.data.byteLength + N * 10 * 4 * 2;
const actBytes = outputs.reduce((a, b) => a + b, 0) * batch * 4 * 2;
const sum = modelBytes * modelCopies + dataBytes + actBytes;
const grew = peak - baseRss;
const live = (peakLive - liveBefore) / MiB;

const row = (k: string, v: string) => console.log(`| ${k} | ${v} |`);
console.log(
  `backend ${info.name}; load average ${
    Deno.loadavg().map((v) => v.toFixed(2)).join(" ")
  }; ${N} images; round: ${result.report.steps} units, stage ${result.report.stage}, phase ${result.report.phase}, ${
    roundMs.toFixed(0)
  } ms`,
);
console.log("\n| parse stage | ms |\n|---|---|");
for (const [k, v] of Object.entries(t)) row(k, v.toFixed(1));
row(
  "**all parsing**",
  `${parseMs.toFixed(1)} (${(100 * parseMs / roundMs).toFixed(2)}% of the round)`,
);
row("saving the model for the reply", saveMs.toFixed(1));
console.log("\n| memory | MiB |\n|---|---|");
row("RSS before the request (runtime, tfjs, warm backend)", baseRss.toFixed(1));
row(
  "peak RSS during parse + round" + (peakReset ? "" : " (process peak: clear_refs failed)"),
  peak.toFixed(1),
);
row("**growth for the request** (peak − before)", grew.toFixed(1));
row(
  `model: ${params} params × 4 B × ${modelCopies} (weights, momentum, reference, teacher)`,
  (modelBytes * modelCopies / MiB).toFixed(2),
);
row(
  `data: request body ${(bodyBytes / MiB).toFixed(2)} + float32 images + logits`,
  (dataBytes / MiB).toFixed(2),
);
row(
  `activations: Σ layer outputs × batch ${batch} × 4 B × 2 (values + gradients)`,
  (actBytes / MiB).toFixed(2),
);
row("sum of model + data + activations, by formula", (sum / MiB).toFixed(2));
row("growth ÷ formula sum", (grew / (sum / MiB)).toFixed(2));
if (be.makeOutput) {
  row(
    "**most tensor bytes alive at once** (model, data, activations, gradients, scratch)",
    live.toFixed(1),
  );
  row(
    "**growth ÷ (live tensor peak + request body)** (target ≤ 2)",
    (grew / (live + bodyBytes / MiB)).toFixed(2),
  );
}
row(
  "V8 heap used before → after",
  `${(baseHeap.heapUsed / MiB).toFixed(1)} → ${(heap.heapUsed / MiB).toFixed(1)}`,
);
row(
  "external (ArrayBuffers incl. wasm memory) before → after",
  `${(baseHeap.external / MiB).toFixed(1)} → ${(heap.external / MiB).toFixed(1)}`,
);
if (baseWasm !== undefined) {
  row(
    "wasm linear memory before → after (never shrinks)",
    `${baseWasm.toFixed(1)} → ${wasmAfter!.toFixed(1)}`,
  );
}
console.log(`\nreply: ${saved.weights.reduce((a, w) => a + w.bytes.byteLength, 0)} weight bytes`);

/**
 * XNNPACK threads for the wasm backend under Deno.
 *
 * tfjs-backend-wasm ships a threaded SIMD build (`tfjs-backend-wasm-threaded-simd.wasm`), an
 * Emscripten pthreads program, but as shipped it does not start under Deno, for three reasons,
 * each worked around here for the duration of `tf.setBackend("wasm")`:
 *
 * 1. Deno runs the npm package's Node bundle, so Emscripten takes its Node path and starts each
 *    pthread with `new (require("worker_threads").Worker)(url)`, where tfjs's `locateFile` gives
 *    a `blob:` URL of the worker script; Deno's `worker_threads` accepts only file paths
 *    (`ERR_WORKER_PATH`). `URL.createObjectURL` is redirected, for that one Blob, to
 *    `wasm_threads_worker.cjs`, which evaluates the shipped worker script with three fixes: the
 *    newline escaping tfjs applies before making its Blob, no assignment to Deno's getter-only
 *    `location`, and loading the main script (which tfjs posts as a Blob of its factory's source,
 *    referring to its bundle's `require$$N` names) from that Blob.
 * 2. tfjs caps the pool at `emscripten_num_logical_cores() / 2` (it assumes two hyper-threads per
 *    core), which is 1 on a 2-core machine, whatever `setThreadsCount` asked for. `os.cpus()`,
 *    which Emscripten's Node path reads, is widened while the module starts.
 * 3. Emscripten replaces the global `Worker` with Node's; Deno's own is put back afterwards (the
 *    pool of 8 workers is created while the module starts, so Emscripten needs none later).
 *
 * Measured on the shared 2-core CI machine: with 2 threads the second thread does about half the
 * work of a large matMul (per-thread CPU time from /proc), so the pool runs; whether wall time
 * drops depends on a free second core (README "Performance").
 */
import * as tf from "@tensorflow/tfjs";
import { setThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import { createRequire } from "node:module";
import { MAX_WASM_THREADS } from "../config.ts";

const WORKER = new URL("./wasm_threads_worker.cjs", import.meta.url);

/**
 * Asks tfjs for the threaded SIMD build with `threads` XNNPACK threads. Must run before the wasm
 * backend is first initialised; returns a function that undoes the global patches once it is.
 */
export function prepareWasmThreads(threads: number): () => void {
  if (!Number.isInteger(threads) || threads < 2 || threads > MAX_WASM_THREADS) {
    throw new RangeError(
      `wasm threads must be an integer in 2..${MAX_WASM_THREADS}, got ${threads}`,
    );
  }
  if (typeof SharedArrayBuffer === "undefined") {
    throw new Error("threaded wasm needs SharedArrayBuffer, which this runtime lacks");
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  setThreadsCount(threads);
  const os = createRequire(import.meta.url)("node:os") as { cpus: () => unknown[] };
  const cpus = os.cpus;
  os.cpus = () => {
    const real = cpus.call(os);
    return Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]);
  };
  const createObjectURL = URL.createObjectURL;
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === "application/javascript"
      ? WORKER.pathname
      : createObjectURL(obj);
  const worker = globalThis.Worker;
  return () => {
    os.cpus = cpus;
    URL.createObjectURL = createObjectURL;
    globalThis.Worker = worker;
  };
}

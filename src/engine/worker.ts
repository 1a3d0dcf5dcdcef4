/**
 * The engine worker's entry: owns the tfjs backend (chosen, initialised and warmed here, never on
 * the HTTP thread) and runs one job at a time. A job whose error leaves the wasm module unusable
 * (a trap, an out-of-memory) is reported with `fault` set; the supervisor then replaces this
 * worker. Replies carry the live tensor count and the worker's memory, so leaks and heap growth
 * are visible from the HTTP thread.
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendInfo, initBackend } from "../tensor/backend.ts";
import { faultOf, runFaultHook } from "./faults.ts";
import { FiniteGuard } from "./finite.ts";
import { OPS } from "./ops.ts";
import type { EngineStats, FromWorker, JobOutput, ToWorker, WireError } from "./protocol.ts";
import { buffersOf } from "./protocol.ts";
import { fromWire, toWire } from "./wire_error.ts";

/** This worker's global scope (typed here so the file checks with the rest of src/). */
const scope = self as unknown as {
  postMessage(msg: FromWorker, transfer: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
};

let backend: BackendInfo | undefined;
const running = new Map<number, AbortController>();

function post(msg: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(msg, transfer);
}

/**
 * This worker's memory: its JS heap, the buffers outside it (decoded images, tensor data on the
 * cpu backend, garbage not yet collected) and the wasm heap (which only grows).
 */
function stats(): EngineStats {
  const mem = tf.memory();
  const usage = Deno.memoryUsage();
  const wasm = backend?.name === "wasm"
    ? (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.buffer
      .byteLength
    : undefined;
  return {
    tensors: mem.numTensors,
    tensorBytes: mem.numBytes,
    memoryBytes: usage.heapTotal + usage.external + (wasm ?? 0),
  };
}

async function runJob(msg: Extract<ToWorker, { type: "job" }>): Promise<void> {
  const ctl = new AbortController();
  running.set(msg.id, ctl);
  const guard = new FiniteGuard();
  let result: { output: JobOutput } | { error: WireError };
  try {
    if (msg.fault) await runFaultHook(msg.fault);
    const output = await OPS[msg.op](msg.input, { signal: ctl.signal, backend: backend!, guard });
    result = { output };
  } catch (err) {
    result = { error: toWire(err, faultOf(err)) };
  } finally {
    guard.dispose();
    running.delete(msg.id);
  }
  // Counted once everything the job held is freed, the guard's probe included.
  const after = stats();
  if ("output" in result) {
    const { output } = result;
    post(
      { type: "done", id: msg.id, output, stats: after },
      buffersOf(output.parts.map((p) => p.bytes)),
    );
  } else {
    post({ type: "failed", id: msg.id, error: result.error, stats: after });
  }
}

scope.onmessage = async (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  switch (msg.type) {
    case "init":
      try {
        backend = await initBackend(msg.backend, { wasmThreads: msg.wasmThreads });
        post({ type: "ready", backend, stats: stats() });
      } catch (err) {
        post({ type: "init_failed", message: err instanceof Error ? err.message : String(err) });
      }
      return;
    case "job":
      return await runJob(msg);
    case "abort":
      running.get(msg.id)?.abort(fromWire(msg.reason));
      return;
  }
};

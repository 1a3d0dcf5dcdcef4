/** Shared test set-up: one backend per test process, chosen by `BACKEND` (default wasm). */
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";

let ready: Promise<unknown> | undefined;

/** Initialises the backend once per process (`BACKEND` env, default `wasm`). */
export function setupBackend(): Promise<unknown> {
  ready ??= initBackend((Deno.env.get("BACKEND") as BackendName | undefined) ?? "wasm");
  return ready;
}

/** Runs `fn` and asserts that it leaves no tensor behind. */
export async function assertNoLeak<T>(fn: () => Promise<T> | T): Promise<T> {
  await setupBackend();
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  if (after !== before) {
    throw new Error(`tensor leak: ${before} tensors before, ${after} after`);
  }
  return out;
}

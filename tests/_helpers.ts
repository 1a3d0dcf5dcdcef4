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

/** An in-process app on the test backend, with config from `env` (defaults otherwise). */
export async function testApp(env: Record<string, string> = {}) {
  const [{ createApp }, { loadConfig }] = await Promise.all([
    import("../src/app.ts"),
    import("../src/config.ts"),
  ]);
  const backend = await setupBackend();
  return createApp({
    config: loadConfig({ LOG_REQUESTS: "false", ...env }),
    backend: backend as Parameters<typeof createApp>[0]["backend"],
  });
}

/** Asserts the DESIGN.md error shape and returns the error code. */
export async function errorCode(res: Response, status: number): Promise<string> {
  const body = await res.json();
  if (res.status !== status) {
    throw new Error(`expected ${status}, got ${res.status}: ${JSON.stringify(body)}`);
  }
  if (typeof body?.error?.code !== "string" || typeof body?.error?.message !== "string") {
    throw new Error(`not the error shape: ${JSON.stringify(body)}`);
  }
  if (JSON.stringify(body).includes("    at ")) throw new Error("stack trace in error body");
  return body.error.code;
}

const FIXTURE = new URL("./fixtures/tiny_cnn/", import.meta.url);

/** Bytes of a file under tests/fixtures/tiny_cnn/. */
export function fixtureBytes(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, FIXTURE));
}

/** A multipart form with the tiny fixture model, its 64 images and (optionally) labels. */
export function fixtureForm(
  opts: { params?: unknown; labels?: boolean; images?: boolean } = {},
): FormData {
  const f = new FormData();
  f.append("model", blobOf(fixtureBytes("model.json")), "model.json");
  f.append("weights", blobOf(fixtureBytes("weights.bin")), "weights.bin");
  if (opts.images !== false) f.append("images", blobOf(fixtureBytes("x.npy")), "x.npy");
  if (opts.labels) f.append("labels", blobOf(fixtureBytes("y.npy")), "y.npy");
  if (opts.params !== undefined) f.append("params", JSON.stringify(opts.params));
  return f;
}

/** A Blob of bytes (TS 6 types Blob parts as ArrayBuffer-backed views only). */
export function blobOf(bytes: Uint8Array, type = ""): Blob {
  return new Blob([bytes as Uint8Array<ArrayBuffer>], { type });
}

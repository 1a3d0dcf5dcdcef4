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

/**
 * An in-process app with config from `env` (defaults otherwise), its engines on the test backend
 * (`BACKEND`, default wasm) and warm. Apps with the same engine settings share their engines
 * (workers), so a test file starts one worker, not one per test. `app.engine` is the supervisor:
 * `app.engine.snapshot().tensors` is the engines' live tensor count after their last job.
 */
export async function testApp(env: Record<string, string> = {}) {
  const [{ createApp }, { loadConfig }, { sharedSupervisor }] = await Promise.all([
    import("../src/app.ts"),
    import("../src/config.ts"),
    import("../src/engine/supervisor.ts"),
  ]);
  const config = loadConfig({
    LOG_REQUESTS: "false",
    BACKEND: Deno.env.get("BACKEND") ?? "wasm",
    ...env,
  });
  const engine = sharedSupervisor(config);
  await engine.ready();
  return Object.assign(createApp({ config, engine }), { engine });
}

/** Live tensors in the app's engines (as reported after each job; see `testApp`). */
export function engineTensors(app: { engine: { snapshot(): { tensors: number } } }): number {
  return app.engine.snapshot().tensors;
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

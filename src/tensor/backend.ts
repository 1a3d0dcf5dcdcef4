/**
 * Tensor backend choice: `webgpu` where a GPU adapter exists, else `wasm` (XNNPACK SIMD), else
 * `cpu`; `BACKEND` forces one. A software WebGPU adapter (llvmpipe on a GPU-less host) is passed
 * over unless forced. Also installs the kernels tfjs lacks and warms the backend so the
 * first request does not pay for shader compilation or wasm instantiation.
 */
import * as tf from "@tensorflow/tfjs";
import { getThreadsCount, setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import { registerKernels } from "./kernels.ts";
import { prepareWasmThreads } from "./wasm_threads.ts";
import { declareNotNode } from "./platform.ts";
import { setWebgpuFlags } from "./webgpu_flags.ts";

declareNotNode();

export type BackendName = "webgpu" | "wasm" | "cpu";
export const BACKEND_ORDER: readonly BackendName[] = ["webgpu", "wasm", "cpu"];

export interface BackendInfo {
  name: BackendName;
  /** What was tried before the chosen one, and why each was passed over. */
  skipped: { name: BackendName; reason: string }[];
  adapter?: string;
  /** XNNPACK threads of the wasm backend (1 unless `wasmThreads` asked for more and they started). */
  wasmThreads?: number;
  warmupMs: number;
  tfjsVersion: string;
}

let wasmPathsSet = false;
/** The wasm backend's factory, kept so that a failed threaded start can register it afresh. */
const wasmFactory = tf.findBackendFactory("wasm");

function wasmDir(): string {
  // The .wasm binaries are looked up next to the installed npm package ("nodeModulesDir": "auto").
  const url = new URL(
    "../../node_modules/@tensorflow/tfjs-backend-wasm/dist/",
    import.meta.url,
  );
  return url.href;
}

/** Software rasterisers that Deno's WebGPU offers on machines without a GPU. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|softpipe|software/i;

async function webgpuAdapter(): Promise<{ name: string; software: boolean } | undefined> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) return undefined;
  const adapter = await gpu.requestAdapter();
  if (!adapter) return undefined;
  const info = (adapter as { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info;
  const name = info
    ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ")
    : "unknown";
  return { name, software: Boolean(info?.isFallbackAdapter) || SOFTWARE_ADAPTER.test(name) };
}

export interface BackendOptions {
  /**
   * XNNPACK threads for the wasm backend (threaded SIMD build, see wasm_threads.ts). Default 1:
   * on a machine whose cores are shared with other processes a second thread measured no faster.
   */
  wasmThreads?: number;
}

async function tryWasmThreaded(threads: number): Promise<string | undefined> {
  const restore = prepareWasmThreads(threads);
  try {
    if (await tf.setBackend("wasm")) {
      await tf.ready();
      return undefined;
    }
    return "tf.setBackend('wasm') failed with threads";
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    restore();
  }
}

async function tryBackend(
  name: BackendName,
  forced: boolean,
  opts: BackendOptions,
): Promise<{ wasmThreads?: number; note?: string }> {
  if (name === "wasm" && !wasmPathsSet) {
    setWasmPaths(wasmDir());
    wasmPathsSet = true;
  }
  if (name === "wasm" && (opts.wasmThreads ?? 1) > 1) {
    const failed = await tryWasmThreaded(opts.wasmThreads!);
    if (!failed) return { wasmThreads: getThreadsCount() };
    // The single-threaded build still works; say why the threads did not start.
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
    setThreadsCount(1);
    tf.removeBackend("wasm");
    tf.registerBackend("wasm", wasmFactory!);
    const ok = await tf.setBackend("wasm");
    if (!ok) throw new Error(`tf.setBackend('wasm') failed (threads: ${failed})`);
    await tf.ready();
    return { wasmThreads: 1, note: `wasm threads did not start: ${failed}` };
  }
  if (name === "webgpu") {
    const adapter = await webgpuAdapter();
    if (!adapter) throw new Error("no WebGPU adapter");
    // Measured on the 2-core CI machine: an SGD step of the small CNN takes ~5 s on llvmpipe
    // against ~0.35 s on wasm, so a software adapter is only used when BACKEND=webgpu asks.
    if (adapter.software && !forced) {
      throw new Error(
        `software adapter (${adapter.name}) is slower than wasm; BACKEND=webgpu forces it`,
      );
    }
    // Our flag choices (webgpu_flags.ts), set before the backend's first kernel runs.
    setWebgpuFlags("ours");
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
  return name === "wasm" ? { wasmThreads: getThreadsCount() } : {};
}

/** A forward and backward pass through a conv net, so kernels are compiled before requests. */
async function warm(): Promise<void> {
  const x = tf.randomUniform([2, 8, 8, 1]);
  const f = tf.randomUniform([3, 3, 1, 2]);
  const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, "same").maxPool(2, 2, "valid").mean()
  );
  const out = g([x, f]);
  await Promise.all(out.map((t) => t.data()));
  tf.dispose([x, f, ...out]);
}

/**
 * Picks and initialises a backend. `forced` selects one and fails if it cannot start; otherwise
 * the first of {@link BACKEND_ORDER} that starts wins.
 */
export async function initBackend(
  forced?: BackendName,
  opts: BackendOptions = {},
): Promise<BackendInfo> {
  registerKernels();
  const skipped: BackendInfo["skipped"] = [];
  const order = forced ? [forced] : BACKEND_ORDER;
  for (const name of order) {
    try {
      const started = await tryBackend(name, forced !== undefined, opts);
      if (started.note) skipped.push({ name, reason: started.note });
      const t0 = performance.now();
      await warm();
      return {
        name,
        skipped,
        wasmThreads: started.wasmThreads,
        adapter: name === "webgpu" ? (await webgpuAdapter())?.name : undefined,
        warmupMs: Math.round(performance.now() - t0),
        tfjsVersion: tf.version.tfjs,
      };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (forced) throw new Error(`backend '${name}' could not start: ${reason}`);
      skipped.push({ name, reason });
    }
  }
  throw new Error(`no tensor backend could start: ${JSON.stringify(skipped)}`);
}

/**
 * The backend tfjs runs on now, as one of {@link BACKEND_ORDER}; any other registered name (a
 * test's own backend) reads as `cpu`, whose defaults are the conservative ones.
 */
export function activeBackend(): BackendName {
  const name = tf.getBackend();
  return (BACKEND_ORDER as readonly string[]).includes(name) ? name as BackendName : "cpu";
}

/**
 * Entry point: read the config, pick and warm the tensor backend, serve.
 */
import { createApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { initBackend } from "./tensor/backend.ts";

try {
  const config = loadConfig();
  const backend = await initBackend(config.BACKEND, { wasmThreads: config.WASM_THREADS });
  console.log(JSON.stringify({
    ts: new Date().toISOString(),
    level: "info",
    msg: "backend ready",
    backend: backend.name,
    adapter: backend.adapter,
    wasm_threads: backend.wasmThreads,
    skipped: backend.skipped,
    warmup_ms: backend.warmupMs,
  }));
  const app = createApp({ config, backend });
  const ac = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => ac.abort());
  }
  Deno.serve({
    port: config.PORT,
    hostname: config.HOST,
    signal: ac.signal,
    onListen: ({ hostname, port }) =>
      console.log(JSON.stringify({
        ts: new Date().toISOString(),
        level: "info",
        msg: "listening",
        url: `http://${hostname}:${port}`,
      })),
  }, app.fetch);
} catch (e) {
  console.error(e instanceof ConfigError ? e.message : `failed to start: ${(e as Error).message}`);
  Deno.exit(1);
}

/**
 * Entry point: read the config, start and warm the tensor engines (workers that own the backend),
 * serve. The HTTP thread itself never initialises a tensor backend.
 */
import { createApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { engineOptions, Supervisor } from "./engine/supervisor.ts";

try {
  const config = loadConfig();
  const engine = new Supervisor(engineOptions(config));
  await engine.ready();
  const backend = engine.backend!;
  console.log(JSON.stringify({
    ts: new Date().toISOString(),
    level: "info",
    msg: "backend ready",
    backend: backend.name,
    adapter: backend.adapter,
    wasm_threads: backend.wasmThreads,
    skipped: backend.skipped,
    warmup_ms: backend.warmupMs,
    engine_workers: config.ENGINE_WORKERS,
  }));
  const app = createApp({ config, engine });
  const ac = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      ac.abort();
      engine.close();
    });
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

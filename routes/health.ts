/** Liveness, readiness (backend, versions, limits) and Prometheus metrics. */
import type { Hono } from "hono";
import { z } from "zod";
import { publicLimits } from "../src/config.ts";
import { EngineNotReadyError } from "../src/engine/errors.ts";
import type { AppEnv } from "../src/http/env.ts";
import type { Operation } from "../src/http/openapi.ts";
import { VERSION } from "../src/version.ts";

const Ready = z.object({
  status: z.literal("ready"),
  version: z.string(),
  backend: z.object({
    name: z.string(),
    adapter: z.string().optional(),
    skipped: z.array(z.object({ name: z.string(), reason: z.string() })),
    warmup_ms: z.number(),
  }),
  versions: z.record(z.string(), z.string()),
  limits: z.record(z.string(), z.number()),
  auth: z.boolean(),
  engines: z.object({
    workers: z.number(),
    warm: z.number(),
    busy: z.number(),
    restarts: z.record(z.string(), z.number()),
  }),
});

export const operations: Operation[] = [
  {
    method: "get",
    path: "/healthz",
    summary: "Liveness: the process answers.",
    open: true,
    response: z.object({ status: z.literal("ok") }),
  },
  {
    method: "get",
    path: "/readyz",
    summary: "Readiness: at least one tensor engine is started and warm (503 while none is, e.g. " +
      "during a restart); reports backend, versions, limits and the engines.",
    open: true,
    response: Ready,
  },
  {
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics: requests by route and status, durations, tensors, bytes, queue.",
    open: true,
    responseType: "text/plain; version=0.0.4",
  },
];

export function register(app: Hono<AppEnv>): void {
  app.get("/healthz", (c) => c.json({ status: "ok" as const }));
  app.get("/readyz", (c) => {
    const { config, engine } = c.get("services");
    const snap = engine.snapshot();
    const engines = {
      workers: snap.workers,
      warm: snap.warm,
      busy: snap.busy,
      restarts: snap.restarts,
    };
    const backend = engine.backend;
    if (!engine.warm || !backend) throw new EngineNotReadyError(engine.retryAfterS, { engines });
    const body: z.infer<typeof Ready> = {
      status: "ready",
      version: VERSION,
      backend: {
        name: backend.name,
        adapter: backend.adapter,
        skipped: backend.skipped,
        warmup_ms: backend.warmupMs,
      },
      versions: {
        purifier: VERSION,
        tfjs: backend.tfjsVersion,
        deno: Deno.version.deno,
        v8: Deno.version.v8,
      },
      limits: publicLimits(config),
      auth: config.API_TOKEN !== undefined,
      engines,
    };
    return c.json(body);
  });
  app.get("/metrics", (c) => {
    const { metrics, queue, engine } = c.get("services");
    return c.text(
      metrics.render({
        queueWaiting: queue.waiting,
        running: queue.running,
        backend: engine.backend?.name ?? "none",
        engine: engine.snapshot(),
      }),
      200,
      { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
    );
  });
}

/**
 * `createApp()`: middleware, routes, error mapping and the OpenAPI document. Routes live in
 * `routes/`, one file per resource, and only wire HTTP to functions in `src/`.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Config } from "./config.ts";
import { sharedSupervisor, type Supervisor } from "./engine/supervisor.ts";
import { HttpError, LimitExceededError } from "./errors.ts";
import { accessLog } from "./http/access_log.ts";
import { bearerAuth } from "./http/auth.ts";
import { deadline } from "./http/deadline.ts";
import { EngineQueue } from "./http/engine_queue.ts";
import type { AppEnv, Services } from "./http/env.ts";
import { Metrics, UNMATCHED } from "./http/metrics.ts";
import { buildOpenApi, type Operation } from "./http/openapi.ts";
import { requestId } from "./http/request_id.ts";
import type { BackendInfo } from "./tensor/backend.ts";
import { VERSION } from "./version.ts";
import * as health from "../routes/health.ts";
import * as docs from "../routes/docs.ts";
import * as predict from "../routes/predict.ts";
import * as attacks from "../routes/attacks.ts";
import * as detect from "../routes/detect.ts";
import * as evaluate from "../routes/evaluate.ts";
import * as purify from "../routes/purify.ts";

/** Each route module: its OpenAPI operations and a function that mounts it. */
interface RouteModule {
  operations: Operation[];
  register(app: Hono<AppEnv>): void;
}

const ROUTES: RouteModule[] = [health, docs, predict, attacks, detect, evaluate, purify];

/**
 * The app over `engine` (default: the process's shared engines for this config's engine
 * settings, started on first use). `backend` is accepted for older callers and ignored: the
 * backend is chosen inside the engine workers.
 */
export function createApp(
  opts: { config: Config; engine?: Supervisor; backend?: BackendInfo },
): Hono<AppEnv> {
  const engine = opts.engine ?? sharedSupervisor(opts.config);
  const services: Services = {
    config: opts.config,
    engine,
    metrics: new Metrics(),
    queue: new EngineQueue(
      opts.config.QUEUE_SIZE,
      opts.config.RETRY_AFTER_S,
      opts.config.ENGINE_WORKERS,
    ),
  };
  const app = new Hono<AppEnv>();

  app.use(requestId());
  app.use(async (c, next) => {
    c.set("services", services);
    const t0 = performance.now();
    await next();
    services.metrics.observe(
      c.req.method,
      c.get("unmatched") ? UNMATCHED : routePath(c),
      c.res.status,
      (performance.now() - t0) / 1000,
    );
  });
  app.use(accessLog(opts.config.LOG_REQUESTS));
  app.use(bearerAuth(opts.config.API_TOKEN));
  app.use(
    bodyLimit({
      maxSize: opts.config.MAX_BODY_BYTES,
      onError: () => {
        throw new LimitExceededError(
          `request body exceeds MAX_BODY_BYTES (${opts.config.MAX_BODY_BYTES} bytes)`,
          { limit: opts.config.MAX_BODY_BYTES },
        );
      },
    }),
  );
  app.use(deadline(opts.config.REQUEST_TIMEOUT_MS));

  for (const r of ROUTES) r.register(app);
  const openapi = buildOpenApi(ROUTES.flatMap((r) => r.operations), VERSION);
  app.get("/openapi.json", (c) => c.json(openapi as object));
  docs.mountPage(app, openapi);

  app.notFound((c) => {
    c.set("unmatched", true);
    return c.json({
      error: {
        code: "not_found",
        message: `no route for ${c.req.method.slice(0, 16)} ${c.req.path.slice(0, 200)}; ` +
          "see /openapi.json",
      },
    }, 404);
  });
  app.onError((err, c) => {
    if (err instanceof HttpError) {
      // Saturation and engine restarts say when to come back.
      const retryAfterS = (err as { retryAfterS?: unknown }).retryAfterS;
      if (typeof retryAfterS === "number") c.header("Retry-After", String(retryAfterS));
      return c.json(
        { error: { code: err.code, message: err.message, details: err.details } },
        err.status as ContentfulStatusCode,
      );
    }
    // Unexpected: log with the request id for the operator, answer without internals.
    console.error(JSON.stringify({
      level: "error",
      msg: "unhandled error",
      request_id: c.get("requestId"),
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    }));
    return c.json({
      error: {
        code: "internal",
        message: "internal error; quote the X-Request-Id header when reporting it",
      },
    }, 500);
  });
  return app;
}

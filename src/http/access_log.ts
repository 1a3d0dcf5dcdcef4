/**
 * One structured JSON line per request on stdout. Logs the route pattern, never bodies, query
 * strings or headers, so model bytes and tokens cannot leak into logs.
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { AppEnv } from "./env.ts";

export function accessLog(enabled: boolean): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const t0 = performance.now();
    await next();
    if (!enabled) return;
    const line = {
      ts: new Date().toISOString(),
      level: c.res.status >= 500 ? "error" : "info",
      msg: "request",
      request_id: c.get("requestId"),
      method: c.req.method,
      route: routePath(c),
      status: c.res.status,
      duration_ms: Math.round((performance.now() - t0) * 10) / 10,
      bytes_in: Number(c.req.header("content-length") ?? 0) || undefined,
    };
    console.log(JSON.stringify(line));
  };
}

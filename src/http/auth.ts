/**
 * Optional bearer-token check (`API_TOKEN`). Health, readiness, metrics and docs stay open so
 * orchestrators can probe without secrets. Comparison is constant-time over the byte strings.
 */
import type { MiddlewareHandler } from "hono";
import { UnauthorizedError } from "../errors.ts";
import type { AppEnv } from "./env.ts";

const OPEN_PATHS = new Set(["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]);

/** Constant-time equality of two strings (time depends only on the longer length). */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  const n = Math.max(x.length, y.length);
  let diff = x.length ^ y.length;
  for (let i = 0; i < n; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

export function bearerAuth(token: string | undefined): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (token === undefined || OPEN_PATHS.has(c.req.path)) return await next();
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m || !timingSafeEqual(m[1], token)) {
      c.header("WWW-Authenticate", 'Bearer realm="purifier"');
      throw new UnauthorizedError();
    }
    await next();
  };
}

/**
 * Request ids: a caller's `X-Request-Id` is kept when it is a short token (so ids flow through a
 * gateway), otherwise a fresh UUID is used; the id is echoed on every response.
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./env.ts";

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const given = c.req.header("x-request-id");
    const id = given && SAFE_ID.test(given) ? given : crypto.randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    await next();
    c.header("X-Request-Id", id);
  };
}

/** `GET /docs`: the human-readable API reference (the JSON one is `/openapi.json`). */
import type { Hono } from "hono";
import type { AppEnv } from "../src/http/env.ts";
import { renderDocs } from "../src/http/docs_page.ts";
import type { Operation } from "../src/http/openapi.ts";

/** The page's Content-Security-Policy: its inline stylesheet, and nothing else. */
export const DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; " +
  "form-action 'none'; frame-ancestors 'none'";

export const operations: Operation[] = [
  {
    method: "get",
    path: "/openapi.json",
    summary: "The OpenAPI 3.1 document.",
    open: true,
  },
  {
    method: "get",
    path: "/docs",
    summary: "The API reference as a self-contained HTML page.",
    open: true,
    responseType: "text/html",
  },
];

export function register(_app: Hono<AppEnv>): void {}

/** Mounted after every route, because the page is rendered from the finished document. */
export function mountPage(app: Hono<AppEnv>, openapi: unknown): void {
  const html = renderDocs(openapi);
  // Nothing on the page is fetched: no script may run, no style or image may load.
  app.get("/docs", (c) => c.html(html, 200, { "Content-Security-Policy": DOCS_CSP }));
}

/**
 * The per-request time budget. Each request gets an `AbortSignal` that fires when the client
 * disconnects or the budget runs out; compute code checks it between steps (`yieldPoint`), and
 * the response is a 504 as soon as the budget is spent. The signal's reason is the named error
 * (504 for the budget, 499 for a client that hung up), so work stopped by it ends in `onError` as
 * that status, not as an unexpected 500.
 *
 * Limit (Deno 2.9): `Deno.serve` aborts `request.signal` on a disconnect only while it is still
 * reading the request; once a POST body has been read, a client that hangs up is noticed when the
 * response is written. Abandoned work then runs to its end or to this budget, whichever is first,
 * so keep REQUEST_TIMEOUT_MS no longer than the gateway's read timeout.
 *
 * `request.signal` here means "the client went away", which is Deno's non-legacy behaviour:
 * deno.json opts in (`"unstable": ["no-legacy-abort"]`). Under the legacy default the signal also
 * fires after every successful response and Deno warns once per process when it is first read.
 */
import type { MiddlewareHandler } from "hono";
import { ClientClosedRequestError, TimeBudgetExceededError } from "../errors.ts";
import type { AppEnv } from "./env.ts";

export function deadline(budgetMs: number): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const ctl = new AbortController();
    const client = c.req.raw.signal;
    const onClientGone = () => ctl.abort(new ClientClosedRequestError());
    if (client.aborted) onClientGone();
    else client.addEventListener("abort", onClientGone, { once: true });
    c.set("signal", ctl.signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new TimeBudgetExceededError(budgetMs);
        ctl.abort(err);
        reject(err);
      }, budgetMs);
    });
    try {
      await Promise.race([next(), expired]);
    } finally {
      clearTimeout(timer);
      client.removeEventListener("abort", onClientGone);
    }
  };
}

/**
 * The per-request time budget. Each request gets an `AbortSignal` that fires when the client
 * disconnects or the budget runs out; compute code checks it between batches, and the response
 * is a 504 as soon as the budget is spent.
 */
import type { MiddlewareHandler } from "hono";
import { TimeBudgetExceededError } from "../errors.ts";
import type { AppEnv } from "./env.ts";

export function deadline(budgetMs: number): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const timeout = AbortSignal.timeout(budgetMs);
    const signal = AbortSignal.any([c.req.raw.signal, timeout]);
    c.set("signal", signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeBudgetExceededError(budgetMs)), budgetMs);
    });
    try {
      await Promise.race([next(), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Throws the signal's reason (a 504 for a spent budget) when it has fired. */
export function checkSignal(signal: AbortSignal | undefined, budgetMs?: number): void {
  if (!signal?.aborted) return;
  const reason = signal.reason;
  if (reason instanceof DOMException && reason.name === "TimeoutError" && budgetMs) {
    throw new TimeBudgetExceededError(budgetMs);
  }
  throw reason instanceof Error ? reason : new Error(String(reason));
}

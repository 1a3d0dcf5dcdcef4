/**
 * A cancellation point for long tensor loops. On the wasm and cpu backends `await t.data()`
 * resolves as a microtask, so a training or attack loop never gives the event loop a turn: timers
 * (the request's time budget) and socket events (a client that hung up) wait until the whole job
 * is done, and its `AbortSignal` never fires in time. Loops call {@link yieldPoint} once per step:
 * at most every {@link YIELD_EVERY_MS} it lets one macrotask turn run (a zero timer, about 2 ms),
 * then rethrows the signal's reason if it has fired.
 */

/** Longest stretch of tensor work between two event-loop turns (the worst-case abort latency). */
export const YIELD_EVERY_MS = 50;

let lastYield = performance.now();

/** Throws the signal's reason when aborted, after giving the event loop a turn when one is due. */
export async function yieldPoint(signal?: AbortSignal): Promise<void> {
  if (performance.now() - lastYield >= YIELD_EVERY_MS) {
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    lastYield = performance.now();
  }
  signal?.throwIfAborted();
}

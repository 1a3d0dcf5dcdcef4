/**
 * At most `slots` tensor jobs at a time (one per engine, `ENGINE_WORKERS`), with a bounded wait
 * queue. Each engine runs one job at a time: interleaving two jobs on one backend doubles peak
 * memory and gains no throughput, so work beyond the engines waits, and load beyond the queue
 * is shed with 503 + Retry-After instead of piling up.
 */
import { SaturatedError } from "../errors.ts";

export class EngineQueue {
  #running = 0;
  #waiters: { resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal }[] = [];

  constructor(readonly maxWaiting: number, readonly retryAfterS: number, readonly slots = 1) {}

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /** True while any job runs. */
  get busy(): boolean {
    return this.#running > 0;
  }

  /** Runs `job` when a slot is free; rejects with 503 when the queue is full. */
  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    // A client that left while its body was read never takes a place in the queue.
    signal?.throwIfAborted();
    if (this.#running >= this.slots) {
      if (this.#waiters.length >= this.maxWaiting) throw new SaturatedError(this.retryAfterS);
      await new Promise<void>((resolve, reject) => {
        const w = { resolve, reject, signal };
        this.#waiters.push(w);
        signal?.addEventListener("abort", () => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) {
            this.#waiters.splice(i, 1);
            reject(signal.reason);
          }
        }, { once: true });
      });
    } else {
      this.#running++;
    }
    try {
      // Inside the try: a waiter handed a slot must pass it on even when it has been aborted.
      signal?.throwIfAborted();
      return await job();
    } finally {
      // The slot goes straight to the next waiter (the count stays), or is freed.
      const next = this.#waiters.shift();
      if (next) next.resolve();
      else this.#running--;
    }
  }
}

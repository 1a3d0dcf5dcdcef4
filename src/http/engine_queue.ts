/**
 * One tensor job at a time per process, with a bounded wait queue. The tfjs engine is a
 * process-wide singleton: interleaving two requests' training loops doubles peak memory and
 * gains no throughput on a single backend, so work is serialised and excess load is shed with
 * 503 + Retry-After instead of piling up.
 */
import { SaturatedError } from "../errors.ts";

export class EngineQueue {
  #busy = false;
  #waiters: { resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal }[] = [];

  constructor(readonly maxWaiting: number, readonly retryAfterS: number) {}

  get waiting(): number {
    return this.#waiters.length;
  }

  get busy(): boolean {
    return this.#busy;
  }

  /** Runs `job` when the engine is free; rejects with 503 when the queue is full. */
  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    // A client that left while its body was read never takes a place in the queue.
    signal?.throwIfAborted();
    if (this.#busy) {
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
    }
    this.#busy = true;
    try {
      // Inside the try: a waiter handed the engine must pass it on even when it has been aborted.
      signal?.throwIfAborted();
      return await job();
    } finally {
      const next = this.#waiters.shift();
      if (next) next.resolve();
      else this.#busy = false;
    }
  }
}

/**
 * The supervisor: `ENGINE_WORKERS` engine workers, each running one job at a time, kept warm and
 * replaced when they fail. A job that traps the wasm module, runs out of memory, kills its worker,
 * or does not stop within `ENGINE_GRACE_MS` of its deadline or its client's abort has its worker
 * terminated and a fresh one started and warmed; the request gets a named error (see
 * `errors.ts`), and the next request is served by a warm engine. After a job that grew a worker's
 * memory past its share of `MEMORY_LIMIT_MB`, the worker is recycled between jobs (the wasm heap
 * never shrinks; a new worker starts small). A worker's memory is the larger of its own heaps (as
 * it reports them) and the process RSS its jobs added and did not give back. Restarts are counted
 * by cause for `/metrics`.
 */
import type { Config } from "../config.ts";
import type { BackendInfo, BackendName } from "../tensor/backend.ts";
import { EngineFault, EngineWorker } from "./engine_worker.ts";
import {
  EngineNotReadyError,
  EngineOutOfMemoryError,
  EngineRestartedError,
  EngineTrapError,
} from "./errors.ts";
import {
  faultHookOf,
  type JobInput,
  type JobOutput,
  type OpName,
  RESTART_CAUSES,
  type RestartCause,
} from "./protocol.ts";

export interface EngineOptions {
  workers: number;
  backend?: BackendName;
  wasmThreads: number;
  graceMs: number;
  startMs: number;
  /** A worker whose memory passes this many bytes after a job is replaced; 0: never. */
  recycleBytes: number;
}

/** The engine settings of a config. */
export function engineOptions(c: Config): EngineOptions {
  return {
    workers: c.ENGINE_WORKERS,
    backend: c.BACKEND,
    wasmThreads: c.WASM_THREADS,
    graceMs: c.ENGINE_GRACE_MS,
    startMs: c.ENGINE_START_MS,
    recycleBytes: Math.floor(
      c.ENGINE_RECYCLE_SHARE * c.MEMORY_LIMIT_MB * 2 ** 20 / c.ENGINE_WORKERS,
    ),
  };
}

export interface SubmitOptions {
  signal: AbortSignal;
  /** The raw test-only `X-Engine-Fault` header; only a value of `FAULT_HOOKS` acts. */
  fault?: string;
  transfer: ArrayBuffer[];
}

/** What `/readyz` and `/metrics` show of the engines. */
export interface EngineSnapshot {
  workers: number;
  warm: number;
  busy: number;
  restarts: Record<RestartCause, number>;
  tensors: number;
  tensorBytes: number;
  memoryBytes: number;
  /** Jobs whose engine did not come back to its warm tensor count (a leak). */
  leakedJobs: number;
}

const MAX_BACKOFF_MS = 30_000;

export class Supervisor {
  readonly #opts: EngineOptions;
  /** One entry per slot: the warm engine there, or undefined while one starts. */
  readonly #slots: (EngineWorker | undefined)[];
  readonly #idle: EngineWorker[] = [];
  readonly #waiters: { resolve(w: EngineWorker): void; reject(e: unknown): void }[] = [];
  readonly restarts = Object.fromEntries(RESTART_CAUSES.map((c) => [c, 0])) as Record<
    RestartCause,
    number
  >;
  #leakedJobs = 0;
  #closed = false;
  #lastStartMs = 1_000;
  #firstReady: Promise<void>;
  #resolveFirst!: () => void;
  #rejectFirst!: (e: unknown) => void;
  /** The backend of the first engine that became warm. */
  backend: BackendInfo | undefined;

  constructor(opts: EngineOptions) {
    this.#opts = opts;
    this.#slots = Array.from({ length: opts.workers }, () => undefined);
    this.#firstReady = new Promise((resolve, reject) => {
      this.#resolveFirst = resolve;
      this.#rejectFirst = reject;
    });
    // Nobody may be waiting yet; a failed first start is reported to whoever awaits ready().
    this.#firstReady.catch(() => {});
    for (let i = 0; i < opts.workers; i++) void this.#fill(i, 0);
  }

  /** Resolves once one engine is warm; rejects when the very first start fails. */
  ready(): Promise<void> {
    return this.#firstReady;
  }

  /** True while at least one warm engine exists (idle or running a job). */
  get warm(): boolean {
    return this.#slots.some((w) => w !== undefined);
  }

  /** Seconds a fresh engine takes to become warm, rounded up: the Retry-After of a restart. */
  get retryAfterS(): number {
    return Math.max(1, Math.ceil(this.#lastStartMs / 1000));
  }

  snapshot(): EngineSnapshot {
    const live = this.#slots.filter((w): w is EngineWorker => w !== undefined);
    return {
      workers: this.#opts.workers,
      warm: live.length,
      busy: live.filter((w) => w.busy).length,
      restarts: { ...this.restarts },
      tensors: live.reduce((n, w) => n + w.stats.tensors, 0),
      tensorBytes: live.reduce((n, w) => n + w.stats.tensorBytes, 0),
      memoryBytes: live.reduce((n, w) => n + w.stats.memoryBytes, 0),
      leakedJobs: this.#leakedJobs,
    };
  }

  /**
   * Runs `op` on the next free warm engine. Rejects with the job's own named error, or with an
   * engine error after the engine was replaced; a job stopped by its signal rejects with the
   * signal's reason.
   */
  async run(op: OpName, input: JobInput, opts: SubmitOptions): Promise<JobOutput> {
    const engine = await this.#acquire(opts.signal);
    const slot = this.#slots.indexOf(engine);
    const rssBefore = Deno.memoryUsage().rss;
    try {
      const out = await engine.run(op, input, {
        signal: opts.signal,
        graceMs: this.#opts.graceMs,
        fault: faultHookOf(opts.fault),
        transfer: opts.transfer,
      });
      this.#release(slot, engine, rssBefore);
      return out;
    } catch (err) {
      if (!(err instanceof EngineFault)) {
        this.#release(slot, engine, rssBefore);
        throw err;
      }
      this.#replace(slot, engine, err.restartCause, err.message);
      if (err.restartCause === "hung" && opts.signal.aborted) throw opts.signal.reason;
      if (err.restartCause === "wasm_trap") throw new EngineTrapError(err.message);
      if (err.restartCause === "out_of_memory" && engine.backend?.name === "wasm") {
        throw new EngineOutOfMemoryError(err.message);
      }
      throw new EngineRestartedError(this.retryAfterS, err.restartCause);
    }
  }

  /** Terminates every engine; pending waiters are refused. */
  close(): void {
    this.#closed = true;
    for (const w of this.#slots) w?.terminate();
    this.#slots.fill(undefined);
    this.#idle.length = 0;
    for (const w of this.#waiters.splice(0)) {
      w.reject(new EngineNotReadyError(this.retryAfterS, { closed: true }));
    }
  }

  #acquire(signal: AbortSignal): Promise<EngineWorker> {
    signal.throwIfAborted();
    const w = this.#idle.shift();
    if (w) return Promise.resolve(w);
    if (this.#closed) return Promise.reject(new EngineNotReadyError(this.retryAfterS));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (e: EngineWorker) => {
          signal.removeEventListener("abort", onAbort);
          resolve(e);
        },
        reject,
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Hands a healthy engine to the next waiter, or recycles it when it grew too big. */
  #release(slot: number, engine: EngineWorker, rssBefore: number): void {
    if (this.#slots[slot] !== engine) return;
    // Memory a job leaves behind in the process (the allocator keeps what the worker's decoders
    // and buffers used) shows in the RSS, not in the worker's own heap figures.
    engine.grownBytes += Math.max(0, Deno.memoryUsage().rss - rssBefore);
    if (engine.stats.tensors !== engine.baselineTensors) {
      this.#leakedJobs++;
      engine.baselineTensors = engine.stats.tensors;
    }
    const limit = this.#opts.recycleBytes;
    if (limit > 0 && Math.max(engine.stats.memoryBytes, engine.grownBytes) > limit) {
      return this.#replace(slot, engine, "memory_recycle", "memory above its share");
    }
    this.#offer(engine);
  }

  #offer(engine: EngineWorker): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(engine);
    else this.#idle.push(engine);
  }

  #replace(slot: number, engine: EngineWorker, cause: RestartCause, message: string): void {
    if (this.#slots[slot] !== engine) return;
    this.restarts[cause]++;
    this.#slots[slot] = undefined;
    const i = this.#idle.indexOf(engine);
    if (i >= 0) this.#idle.splice(i, 1);
    engine.terminate();
    if (cause !== "memory_recycle") {
      console.error(JSON.stringify({
        ts: new Date().toISOString(),
        level: "error",
        msg: "engine restarted",
        cause,
        error: message.slice(0, 300),
      }));
    }
    void this.#fill(slot, 0);
  }

  /** Starts an engine in `slot`, retrying with backoff until one is warm (or closed). */
  async #fill(slot: number, attempt: number): Promise<void> {
    if (this.#closed) return;
    const t0 = performance.now();
    let engine: EngineWorker;
    try {
      engine = await EngineWorker.start({
        backend: this.#opts.backend,
        wasmThreads: this.#opts.wasmThreads,
        startMs: this.#opts.startMs,
      });
    } catch (err) {
      this.restarts.start_failed++;
      if (!this.backend) {
        // The first engine could not start: the configuration cannot work.
        this.#rejectFirst(err);
      }
      if (this.#closed) return;
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt);
      setTimeout(() => void this.#fill(slot, attempt + 1), delay);
      return;
    }
    if (this.#closed) return engine.terminate();
    this.#lastStartMs = performance.now() - t0;
    this.backend ??= engine.backend;
    this.#slots[slot] = engine;
    engine.onDeath = (cause, message) => this.#replace(slot, engine, cause, message);
    this.#resolveFirst();
    this.#offer(engine);
  }
}

/** Engines shared by apps of one process with the same engine settings (tests build many apps). */
const shared = new Map<string, Supervisor>();

export function sharedSupervisor(config: Config): Supervisor {
  const opts = engineOptions(config);
  const key = JSON.stringify(opts);
  let s = shared.get(key);
  if (!s) {
    s = new Supervisor(opts);
    shared.set(key, s);
  }
  return s;
}

/**
 * The HTTP thread's handle on one engine worker: starts it (backend init and warm-up happen in
 * the worker), posts one job at a time with its buffers transferred, and turns every way a job
 * can end into a settled promise: a reply, a named error from the job, an {@link EngineFault}
 * (trap, out-of-memory, death), or, when the job's signal fired and the worker did not stop
 * within the grace period, a `hung` fault. It never restarts itself; the supervisor does.
 */
import type { BackendInfo, BackendName } from "../tensor/backend.ts";
import type {
  EngineStats,
  FaultHook,
  FromWorker,
  JobInput,
  JobOutput,
  OpName,
  RestartCause,
  ToWorker,
} from "./protocol.ts";
import { fromWire, toWire } from "./wire_error.ts";

const WORKER_URL = new URL("./worker.ts", import.meta.url);

/** The job failed in a way that leaves this worker unusable. */
export class EngineFault extends Error {
  constructor(readonly restartCause: RestartCause, message: string) {
    super(message);
    this.name = "EngineFault";
  }
}

export interface StartOptions {
  backend?: BackendName;
  wasmThreads: number;
  /** Longest the backend may take to start and warm. */
  startMs: number;
}

export interface RunOptions {
  signal: AbortSignal;
  /** Time the worker gets to stop once `signal` fired. */
  graceMs: number;
  fault?: FaultHook;
  /** Buffers of `input` to move to the worker (they are unusable here afterwards). */
  transfer: ArrayBuffer[];
}

interface Pending {
  id: number;
  resolve(out: JobOutput): void;
  reject(err: unknown): void;
}

export class EngineWorker {
  readonly #worker: Worker;
  #pending: Pending | undefined;
  #nextId = 1;
  #dead = false;
  backend: BackendInfo | undefined;
  stats: EngineStats = { tensors: 0, tensorBytes: 0, memoryBytes: 0 };
  /** Process RSS added across this worker's jobs (what the allocator kept for it). */
  grownBytes = 0;
  /** The warm engine's tensor count: every job must leave exactly this many. */
  baselineTensors = 0;
  /** Called once when the worker dies outside a job (so the supervisor can replace it). */
  onDeath: ((cause: RestartCause, message: string) => void) | undefined;

  private constructor() {
    this.#worker = new Worker(WORKER_URL, { type: "module" });
    this.#worker.onerror = (e) => {
      // An uncaught error ends the worker; keep it from ending this process too.
      e.preventDefault();
      this.#die("died", `uncaught error in the engine: ${e.message}`);
    };
    this.#worker.onmessageerror = () => this.#die("died", "a message from the engine was lost");
  }

  /** A warm engine, or an {@link EngineFault} (`start_failed`) after `opts.startMs`. */
  static async start(opts: StartOptions): Promise<EngineWorker> {
    const w = new EngineWorker();
    try {
      const ready = await new Promise<Extract<FromWorker, { type: "ready" }>>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new EngineFault("start_failed", `no warm engine after ${opts.startMs} ms`)),
          opts.startMs,
        );
        w.#pending = {
          id: 0,
          resolve: () => {},
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        };
        w.#worker.onmessage = (e: MessageEvent<FromWorker>) => {
          clearTimeout(timer);
          w.#pending = undefined;
          if (e.data.type === "ready") resolve(e.data);
          else {
            reject(
              new EngineFault(
                "start_failed",
                e.data.type === "init_failed" ? e.data.message : "unexpected message",
              ),
            );
          }
        };
        w.#post({ type: "init", backend: opts.backend, wasmThreads: opts.wasmThreads });
      });
      w.backend = ready.backend;
      w.stats = ready.stats;
      w.baselineTensors = ready.stats.tensors;
      w.#worker.onmessage = (e: MessageEvent<FromWorker>) => w.#onMessage(e.data);
      return w;
    } catch (err) {
      w.terminate();
      throw err;
    }
  }

  get dead(): boolean {
    return this.#dead;
  }

  get busy(): boolean {
    return this.#pending !== undefined;
  }

  /** Runs one job. Rejects with the job's own error, or an {@link EngineFault}. */
  run(op: OpName, input: JobInput, opts: RunOptions): Promise<JobOutput> {
    if (this.#dead) return Promise.reject(new EngineFault("died", "the engine is gone"));
    if (this.#pending) throw new Error("EngineWorker.run: a job is already running");
    const id = this.#nextId++;
    const { signal } = opts;
    return new Promise<JobOutput>((resolve, reject) => {
      let grace: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => {
        this.#post({ type: "abort", id, reason: toWire(signal.reason) });
        grace = setTimeout(() => {
          this.#settle(id, () =>
            reject(
              new EngineFault(
                "hung",
                `the engine did not stop within ${opts.graceMs} ms of its job being stopped`,
              ),
            ));
        }, opts.graceMs);
      };
      const done = () => {
        clearTimeout(grace);
        signal.removeEventListener("abort", onAbort);
      };
      this.#pending = {
        id,
        resolve: (out) => {
          done();
          resolve(out);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      this.#post({ type: "job", id, op, input, fault: opts.fault }, opts.transfer);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  terminate(): void {
    this.#dead = true;
    this.#worker.terminate();
  }

  #post(msg: ToWorker, transfer: Transferable[] = []): void {
    this.#worker.postMessage(msg, transfer);
  }

  /** Clears the pending job `id` (if it still is the one) and runs `fn`. */
  #settle(id: number, fn: () => void): void {
    if (this.#pending?.id !== id) return;
    this.#pending = undefined;
    fn();
  }

  #onMessage(msg: FromWorker): void {
    if (msg.type !== "done" && msg.type !== "failed") return;
    this.stats = msg.stats;
    const p = this.#pending;
    if (!p || p.id !== msg.id) return;
    if (msg.type === "done") return this.#settle(msg.id, () => p.resolve(msg.output));
    const { error } = msg;
    this.#settle(msg.id, () =>
      p.reject(
        error.fault
          ? new EngineFault(error.fault, `${error.name}: ${error.message}`)
          : fromWire(error),
      ));
  }

  #die(cause: RestartCause, message: string): void {
    if (this.#dead) return;
    this.terminate();
    const p = this.#pending;
    this.#pending = undefined;
    if (p) p.reject(new EngineFault(cause, message));
    else this.onDeath?.(cause, message);
  }
}

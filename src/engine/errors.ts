/**
 * What a request hears when the tensor engine under it failed. A wasm trap or a wasm
 * out-of-memory is caused by what the job ran (each engine has its own heap and runs one job), so
 * it is the model's or the input's doing: 422, do not retry as is. A worker that died otherwise
 * cannot be blamed on the request: 503 with `Retry-After`, the time a fresh engine takes to warm.
 */
import { HttpError } from "../errors.ts";

/** The model crashed the engine's wasm code (e.g. `memory access out of bounds`). */
export class EngineTrapError extends HttpError {
  constructor(cause: string) {
    super(
      422,
      "engine_trap",
      `the tensor engine crashed on this model and input (${cause}); the engine was restarted, ` +
        "and the same request would crash it again",
      { cause, restarted: true },
    );
  }
}

/** The job needed more memory than the engine's heap can hold. */
export class EngineOutOfMemoryError extends HttpError {
  constructor(cause: string) {
    super(
      422,
      "engine_out_of_memory",
      `the tensor engine ran out of memory on this model and input (${cause}); the engine was ` +
        "restarted: send fewer or smaller images, or a smaller model",
      { cause, restarted: true },
    );
  }
}

/** The engine died for a reason the request cannot be blamed for; a fresh one is starting. */
export class EngineRestartedError extends HttpError {
  constructor(readonly retryAfterS: number, cause: string) {
    super(
      503,
      "engine_restarted",
      `the tensor engine stopped (${cause}) and is being restarted; retry after ${retryAfterS} s`,
      { cause, retryAfterS },
    );
  }
}

/** No warm engine exists yet (starting, or restarting after a failure). */
export class EngineNotReadyError extends HttpError {
  constructor(readonly retryAfterS: number, details?: Record<string, unknown>) {
    super(
      503,
      "not_ready",
      `no warm tensor engine yet; retry after ${retryAfterS} s`,
      { retryAfterS, ...details },
    );
  }
}

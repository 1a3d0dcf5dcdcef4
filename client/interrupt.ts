/**
 * Ctrl-C for the client: the handler runs at once, unless a checkpoint is being written, in which
 * case it runs as soon as that write is done. A checkpoint (model, state, then checkpoint.json) is
 * never left half written, so "rerun the same command to resume" always finds a whole one.
 */
let busy = 0;
let pending: (() => void) | undefined;

/** Runs `write` with Ctrl-C held off until it is done. */
export async function whileCheckpointing<T>(write: () => Promise<T>): Promise<T> {
  busy++;
  try {
    return await write();
  } finally {
    busy--;
    const run = busy === 0 ? pending : undefined;
    if (run) {
      pending = undefined;
      run();
    }
  }
}

/** Calls `handler` on SIGINT, after any checkpoint write in flight. */
export function onInterrupt(handler: () => void): void {
  Deno.addSignalListener("SIGINT", () => {
    if (busy > 0) pending = handler;
    else handler();
  });
}

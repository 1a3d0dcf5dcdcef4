/**
 * The one host read per step that early stopping needs: "is any image still unsolved?".
 *
 * On GPU backends the read is lagged by one step: the flag of step t is awaited only after step
 * t+1 has been queued, so the device never idles while the host waits. That costs at most one
 * extra step once everything has succeeded, and changes no result, because solved images are
 * frozen. On wasm and cpu a read costs nothing to wait for, so it is not lagged.
 */
import * as tf from "@tensorflow/tfjs";

/** Reads a bool scalar and disposes it. */
export async function readFlag(scalar: tf.Tensor): Promise<boolean> {
  try {
    return (await scalar.data())[0] !== 0;
  } finally {
    scalar.dispose();
  }
}

export class EarlyStop {
  /** Forces lagged (true) or immediate (false) reads for every attack; tests use it. */
  static force: boolean | undefined = undefined;

  #pending: Promise<boolean> | undefined;

  constructor(
    readonly lagged = EarlyStop.force ?? !["wasm", "cpu"].includes(tf.getBackend()),
  ) {}

  /**
   * Takes ownership of `keepGoing` (a bool scalar: some image is unsolved) and resolves whether
   * to run another step: with its value, or, when lagged, with the previous step's.
   */
  proceed(keepGoing: tf.Tensor): Promise<boolean> {
    const read = readFlag(keepGoing);
    if (!this.lagged) return read;
    const previous = this.#pending;
    this.#pending = read;
    return previous ?? Promise.resolve(true);
  }

  /** Waits for a read still in flight, so its scalar is disposed before the attack returns. */
  async settle(): Promise<void> {
    const p = this.#pending;
    this.#pending = undefined;
    await p?.catch(() => undefined);
  }
}

/**
 * A seeded random number generator for attack code that runs on the host (Square Attack's window
 * positions and signs): mulberry32, 32 bits of state, uniform in [0, 1). Not cryptographic; its
 * only job is reproducibility from the request's seed.
 */
export class HostRandom {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [lo, hi] (both included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** −1 or +1 with equal chance. */
  sign(): number {
    return this.next() < 0.5 ? -1 : 1;
  }
}

/**
 * Counter-based randomness for purification rounds. Every random draw (an epoch's shuffle, a PGD
 * random start, a random first clean set) comes from a generator seeded by `(seed, purpose,
 * stage, epoch, step)`, never from a generator that runs on across steps. So the round state needs
 * to carry only the user's seed and the cursor: a round resumed at step 17 draws exactly what an
 * uninterrupted run draws at step 17, which is what makes resumed == uninterrupted.
 *
 * The generator is SFC32 (Chris Doty-Humphrey's "small fast counting" generator), seeded through
 * a splitmix32-style hash of all the integers.
 *
 * @module
 */

/** What a draw is for; each purpose gets an unrelated stream of the same seed. */
export const STREAM = {
  shuffle: 1,
  flaggedShuffle: 2,
  pgd: 3,
  initialClean: 4,
  reconstruct: 5,
  probe: 6,
} as const;

function mix32(x: number): number {
  x = (x + 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

/** Hashes integers (each taken modulo 2³²) into one 32-bit value. */
export function hashInts(...parts: number[]): number {
  let h = 0x2545f491;
  for (const p of parts) h = mix32(h ^ mix32(Math.trunc(p) >>> 0));
  return h;
}

/** A seeded SFC32 generator. */
export class CounterRng {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  /** A generator for `(seed, ...parts)`; equal arguments give equal streams. */
  constructor(seed: number, ...parts: number[]) {
    const h = hashInts(seed, ...parts);
    this.#a = mix32(h ^ 0x6a09e667);
    this.#b = mix32(h ^ 0xbb67ae85);
    this.#c = mix32(h ^ 0x3c6ef372);
    for (let i = 0; i < 12; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** Uniform integer in [0, n) without modulo bias, `1 ≤ n ≤ 2³²`. */
  int(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    let x: number;
    do x = this.uint32(); while (x >= limit);
    return x % n;
  }

  /** Fisher-Yates shuffle in place; returns `arr`. */
  shuffle<T extends { length: number; [i: number]: number }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}

/** A seed in [0, 2³¹) for tfjs' seeded random ops (PGD random starts), from the same parts. */
export function opSeed(seed: number, ...parts: number[]): number {
  return hashInts(seed, STREAM.pgd, ...parts) >>> 1;
}

/**
 * A small seeded pseudo-random generator for the backdoor lab: the same seed gives the same
 * subsets, poisoned indices, trigger patterns and shuffles on every platform, which `Math.random`
 * cannot promise. The generator is SFC32 (Chris Doty-Humphrey's "small fast counting" generator,
 * from PractRand), seeded through a splitmix32 hash so that nearby seeds give unrelated streams.
 *
 * @module
 */

/** splitmix32 finaliser: a bijective 32-bit mix, so distinct inputs stay distinct. */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

/**
 * The SFC32 core every seeded generator here shares: state `(a, b, c)` from the subclass's
 * seeding, a counter `d` from 1, and the first 12 outputs discarded (as SFC32's authors do) so
 * the state is well mixed before use.
 */
export class Sfc32 {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  constructor(a: number, b: number, c: number) {
    this.#a = a;
    this.#b = b;
    this.#c = c;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** A uniform 32-bit unsigned integer. */
  uint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** Uniform integer in [0, n), without modulo bias; `n` in [1, 2³²]. */
  int(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    let x: number;
    do x = this.uint32(); while (x >= limit);
    return x % n;
  }

  /** Shuffles `arr` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}

/** The lab's seeding: `seed` and `stream` mixed into SFC32's three state words. */
function labState(seed: number, stream: number): [number, number, number] {
  const s = mix32(Math.trunc(seed) >>> 0);
  const b = mix32(s ^ mix32(Math.trunc(stream) >>> 0));
  return [mix32(s ^ 0x6a09e667), b, mix32(b ^ 0xbb67ae85)];
}

/**
 * Seeded uniform source. `seed` and `stream` are any integers (both taken modulo 2³²); different
 * streams of one seed are independent, so each use of randomness (subset, poison, shuffle, trigger)
 * gets its own stream and adding a draw to one does not shift the others.
 */
export class Rng extends Sfc32 {
  #spare: number | undefined;

  constructor(seed: number, stream = 0) {
    super(...labState(seed, stream));
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Marsaglia's polar method; the second draw of each pair is kept). */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare;
      this.#spare = undefined;
      return s;
    }
    let u: number, v: number, s: number;
    do {
      u = 2 * this.next() - 1;
      v = 2 * this.next() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.#spare = v * f;
    return u * f;
  }

  /** `k` distinct values of `pool` chosen uniformly, in random order (partial Fisher-Yates). */
  sample(pool: ArrayLike<number>, k: number): Int32Array {
    if (!(k >= 0 && k <= pool.length)) {
      throw new RangeError(`cannot sample ${k} values from a pool of ${pool.length}`);
    }
    const a = Int32Array.from(pool);
    for (let i = 0; i < k; i++) {
      const j = i + this.int(a.length - i);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a.slice(0, k);
  }
}

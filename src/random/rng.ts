/**
 * Seeded randomness for the whole service: the same seed gives the same subsets, shuffles,
 * trigger patterns, random starts and round draws on every platform, which `Math.random` cannot
 * promise. Three things live here and nowhere else:
 *
 * - the generator, SFC32 (Chris Doty-Humphrey's "small fast counting" generator, from PractRand);
 * - the seed mixers: {@link mix32} (the splitmix32 finaliser) and {@link hashInts} built on it for
 *   this module's generators, and {@link deriveSeed} (FNV-1a with a murmur3 finaliser) for the
 *   attacks' tfjs op seeds;
 * - stream derivation: {@link Rng} `(seed, stream)` for independent uses of one seed,
 *   {@link CounterRng} `(seed, ...parts)` for counter-based draws that a resumed computation
 *   repeats exactly, {@link opSeed} for tfjs' seeded ops and {@link seededDraw} for endless seeded
 *   epochs of shuffles.
 *
 * Each mixer and seeding keeps the exact arithmetic it had before they shared a home, so every
 * seeded output of the service is unchanged bit for bit.
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

/** Hashes integers (each taken modulo 2³²) into one 32-bit value through {@link mix32}. */
export function hashInts(...parts: number[]): number {
  let h = 0x2545f491;
  for (const p of parts) h = mix32(h ^ mix32(Math.trunc(p) >>> 0));
  return h;
}

/**
 * Mixes integers (a user seed, a batch index, a restart index) into one seed in [0, 2³¹) for
 * tfjs' seeded ops. Distinct inputs give unrelated seeds, so restart 1 of batch 0 and restart 0 of
 * batch 1 draw different noise. Unlike {@link hashInts} it reads all 64 bits of each part.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    // FNV-1a over the 32-bit halves of each part, then a murmur3 finaliser.
    for (const word of [p >>> 0, Math.floor(p / 2 ** 32) >>> 0]) {
      h = Math.imul(h ^ word, 0x01000193);
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 1;
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
  #spare: number | undefined;

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

/**
 * Seeded uniform source. `seed` and `stream` are any integers (both taken modulo 2³²); different
 * streams of one seed are independent, so each use of randomness (subset, poison, shuffle, trigger)
 * gets its own stream and adding a draw to one does not shift the others.
 */
export class Rng extends Sfc32 {
  constructor(seed: number, stream = 0) {
    const s = mix32(Math.trunc(seed) >>> 0);
    const b = mix32(s ^ mix32(Math.trunc(stream) >>> 0));
    super(mix32(s ^ 0x6a09e667), b, mix32(b ^ 0xbb67ae85));
  }
}

/**
 * A counter-based generator for `(seed, ...parts)`: seeded from the parts alone, never from a
 * generator that runs on, so a computation resumed at step 17 draws exactly what an uninterrupted
 * one draws at step 17. Equal arguments give equal streams.
 */
export class CounterRng extends Sfc32 {
  constructor(seed: number, ...parts: number[]) {
    const h = hashInts(seed, ...parts);
    super(mix32(h ^ 0x6a09e667), mix32(h ^ 0xbb67ae85), mix32(h ^ 0x3c6ef372));
  }
}

/**
 * A seed in [0, 2³¹) for tfjs' seeded random ops, counter-based like {@link CounterRng}:
 * `stream` names the use, `parts` the position (stage, step, ...).
 */
export function opSeed(seed: number, stream: number, ...parts: number[]): number {
  return hashInts(seed, stream, ...parts) >>> 1;
}

/**
 * Indices `[from, from + count)` of the endless sequence of seeded shuffles of `pool` for
 * `(seed, stream, stage)`: epoch `e` is `pool` shuffled by `CounterRng(seed, stream, stage, e)`.
 * `cache` keeps the shuffles already made (keyed by stream, stage and epoch).
 */
export function seededDraw(
  pool: Int32Array,
  seed: number,
  stream: number,
  stage: number,
  from: number,
  count: number,
  cache: Map<string, Int32Array>,
): Int32Array {
  const out = new Int32Array(count);
  for (let j = 0; j < count; j++) {
    const pos = from + j;
    const epoch = Math.floor(pos / pool.length);
    const key = `${stream}:${stage}:${epoch}`;
    let perm = cache.get(key);
    if (perm === undefined) {
      perm = new CounterRng(seed, stream, stage, epoch).shuffle(pool.slice());
      cache.set(key, perm);
    }
    out[j] = perm[pos % pool.length];
  }
  return out;
}

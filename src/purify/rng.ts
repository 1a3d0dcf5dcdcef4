/**
 * Counter-based randomness for purification rounds. Every random draw (an epoch's shuffle, a PGD
 * random start, a random first clean set) comes from a generator seeded by `(seed, purpose,
 * stage, epoch, step)`, never from a generator that runs on across steps. So the round state needs
 * to carry only the user's seed and the cursor: a round resumed at step 17 draws exactly what an
 * uninterrupted run draws at step 17, which is what makes resumed == uninterrupted.
 *
 * The generator is the lab's SFC32 core (`src/lab/rng.ts`), seeded through a splitmix32-style
 * hash of all the integers.
 *
 * @module
 */
import { mix32, Sfc32 } from "../lab/rng.ts";

/** What a draw is for; each purpose gets an unrelated stream of the same seed. */
export const STREAM = {
  shuffle: 1,
  flaggedShuffle: 2,
  pgd: 3,
  initialClean: 4,
  reconstruct: 5,
  probe: 6,
  evidenceImages: 7,
  evidencePatch: 8,
  evidenceAdditive: 9,
  evidenceUntargeted: 10,
} as const;

/** Hashes integers (each taken modulo 2³²) into one 32-bit value. */
export function hashInts(...parts: number[]): number {
  let h = 0x2545f491;
  for (const p of parts) h = mix32(h ^ mix32(Math.trunc(p) >>> 0));
  return h;
}

/** A seeded SFC32 generator (the lab's core, {@link Sfc32}) for `(seed, ...parts)`. */
export class CounterRng extends Sfc32 {
  /** Equal arguments give equal streams. */
  constructor(seed: number, ...parts: number[]) {
    const h = hashInts(seed, ...parts);
    super(mix32(h ^ 0x6a09e667), mix32(h ^ 0xbb67ae85), mix32(h ^ 0x3c6ef372));
  }
}

/** A seed in [0, 2³¹) for tfjs' seeded random ops (PGD random starts), from the same parts. */
export function opSeed(seed: number, ...parts: number[]): number {
  return hashInts(seed, STREAM.pgd, ...parts) >>> 1;
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

/**
 * What each random draw of a purification round is for. Every draw (an epoch's shuffle, a PGD
 * random start, a random first clean set) comes from a counter-based generator of
 * `src/random/rng.ts` seeded by `(seed, purpose, stage, epoch, step)`, never from one that runs on
 * across steps. So the round state carries only the user's seed and the cursor: a round resumed at
 * step 17 draws exactly what an uninterrupted run draws at step 17, which is what makes resumed ==
 * uninterrupted. Each purpose gets an unrelated stream of the same seed.
 *
 * @module
 */

/** Stream ids of the round's draws; tfjs op seeds all derive from `STREAM.pgd`. */
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

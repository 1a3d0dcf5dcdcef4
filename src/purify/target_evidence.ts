/**
 * The backdoor's target from the model, not from the labels: per-class evidence gathered from the
 * infected model before any training, and the rule that turns it into zero, one or several
 * suspected target classes (or an all-to-all suspicion).
 *
 * Signals, each an anomaly index over the classes (robust z-score: distance from the other
 * classes' median in units of their 1.4826·MAD, the consistent estimate of a standard deviation,
 * with a floor so that a flat profile does not turn noise into evidence):
 *
 * - `patch`: how often a mask-and-pattern trigger of a small, fixed area reaches each class (the
 *   search of Neural Cleanse, Wang et al., S&P 2019, with its area capped rather than traded off,
 *   so that a short search on every class compares like with like; its anomaly index is Neural
 *   Cleanse's, on success rather than on size). Catches patch triggers, including
 *   label-consistent ones.
 * - `additive`: how often a small universal additive perturbation towards each class reaches it
 *   (`universal_perturbation.ts`). Catches blended and signal triggers (Blend, SIG), which a
 *   small mask cannot draw.
 * - `landing`: where untargeted PGD examples of clean-looking images land, the observation PUD
 *   rests on (Hua et al., arXiv 2405.17929): an infected model's adversarial examples land on the
 *   backdoor target more than on other classes.
 * - `label`: the label count's excess over the median class count (an all-to-one attack that
 *   relabels adds its poison to the target's count). Clean-label attacks and all-to-all attacks
 *   leave no such trace; a naturally unbalanced set leaves a false one, so label excess alone
 *   only makes a suspect when no model-side signal disagrees (see {@link decideSuspects}).
 *
 * All-to-all: an untargeted trigger search (every class moved off its label) within the same
 * small area that moves most images, and sends the source classes to distinct destinations (a
 * permutation, not one sink class), marks every class as a target of some other.
 *
 * @module
 */
import { round4 } from "./events.ts";

/** Evidence for one class. Indices are anomaly indices (higher = more suspicious). */
export interface ClassEvidence {
  class: number;
  /** Label count and its excess over the median count. */
  count: number;
  label_excess: number;
  /** Share of untargeted PGD examples of other classes that land on this class. */
  landing: number | null;
  landing_index: number | null;
  /** Mean mask value of the smallest trigger found towards this class, and its success. */
  patch_mask: number | null;
  patch_success: number | null;
  patch_index: number | null;
  /** Success of the universal additive perturbation towards this class. */
  additive_success: number | null;
  additive_index: number | null;
  /** max over signals of index / threshold: ≥ 1 makes the class a suspect. */
  score: number;
}

/** Untargeted search results: the all-to-all test. */
export interface UntargetedEvidence {
  patch_mask: number;
  patch_success: number;
  /** For each source class, the class its stamped images go to most, and that share. */
  destinations: { class: number; share: number }[];
  /** Source classes with distinct dominant destinations (a sink class counts once). */
  distinct_destinations: number;
}

export interface Thresholds {
  patch: number;
  additive: number;
  landing: number;
  label_excess: number;
  /** Most suspects kept, most anomalous first. */
  max_suspects: number;
}

export interface SuspectDecision {
  classes: number[];
  /** The most anomalous suspect, or null. */
  primary: number | null;
  all_to_all: boolean;
  per_class: ClassEvidence[];
  untargeted: UntargetedEvidence | null;
}

/** Median of a non-empty list. */
export function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Robust leave-one-out z-scores: each value against the median and 1.4826·MAD of the *other*
 * values (sign `+1`: high values are anomalous, `−1`: low ones), the MAD floored at `floor` so
 * that near-identical values do not make huge indices. Leaving the value out keeps one target
 * from inflating the spread it is measured against, which matters with few classes (with four,
 * a single outlier moves the plain median and MAD by half its distance).
 */
export function anomalyIndex(v: readonly number[], sign: 1 | -1, floor: number): number[] {
  return v.map((x, i) => {
    const rest = v.filter((_, j) => j !== i);
    if (rest.length === 0) return 0;
    const med = median(rest);
    const mad = Math.max(1.4826 * median(rest.map((r) => Math.abs(r - med))), floor);
    return (sign * (x - med)) / mad;
  });
}

/** Label counts and `(count − median)/median` per class. */
export function labelExcess(labels: Int32Array, k: number): { counts: number[]; excess: number[] } {
  const counts = new Array<number>(k).fill(0);
  for (const y of labels) counts[y]++;
  const med = Math.max(median(counts), 1);
  return { counts, excess: counts.map((c) => (c - med) / med) };
}

/** Raw per-class measurements, each array of length K (null: the signal was not measured). */
export interface RawEvidence {
  counts: number[];
  labelExcess: number[];
  landing: number[] | null;
  patchMask: number[] | null;
  patchSuccess: number[] | null;
  additiveSuccess: number[] | null;
  untargeted: { mask: number; success: number; flips: number[][] } | null;
}

/** MAD floors: a spread smaller than these is measurement noise on 64-image batches. */
const FLOOR = { patch: 0.03, additive: 0.03, landing: 0.02 };
/**
 * Each signal needs an absolute effect too, not only a relative one. Patch and additive
 * successes are medians over the source classes: a backdoor trigger works from every class, a
 * natural attractor only from its neighbours (on the lab's Fashion-MNIST models a 9-pixel patch
 * sends 69-84% of sandals and sneakers to bag, and a 16/255 perturbation 30% of all images to
 * shirt, which averaged over the sources looked like evidence: 0.52 and 0.28).
 */
const MIN_PATCH_SUCCESS = 0.4;
const MIN_ADDITIVE_SUCCESS = 0.4;
const MIN_LANDING = 0.3;
/** A further suspect needs at least this share of the first suspect's score. */
const SECOND_SUSPECT_SHARE = 0.5;
/** An untargeted trigger of the patch budget must move this share of images off their label. */
const MIN_ALL_TO_ALL_SUCCESS = 0.6;

/**
 * Turns measurements into suspects. A class's score is the sum, over the signals whose index
 * reaches its threshold (with the signal's absolute minimum), of index / threshold, plus its
 * label excess / `label_excess` when that reaches 1 and no model-side signal names only other
 * classes (a naturally frequent class is then left alone). Classes scoring at least 1 and at
 * least half the top score are suspects, most anomalous first. All-to-all is suspected when the untargeted trigger moves most images
 * off their label and at least half the classes have distinct dominant destinations.
 */
export function decideSuspects(raw: RawEvidence, th: Thresholds): SuspectDecision {
  const k = raw.counts.length;
  const landIdx = raw.landing ? anomalyIndex(raw.landing, 1, FLOOR.landing) : null;
  const patchIdx = raw.patchSuccess ? anomalyIndex(raw.patchSuccess, 1, FLOOR.patch) : null;
  const addIdx = raw.additiveSuccess ? anomalyIndex(raw.additiveSuccess, 1, FLOOR.additive) : null;
  const per: ClassEvidence[] = [];
  for (let c = 0; c < k; c++) {
    const patchOk = (raw.patchSuccess?.[c] ?? 0) >= MIN_PATCH_SUCCESS;
    const addOk = (raw.additiveSuccess?.[c] ?? 0) >= MIN_ADDITIVE_SUCCESS;
    const landOk = (raw.landing?.[c] ?? 0) >= MIN_LANDING;
    // Each signal that passes its threshold adds its index / threshold: a class named by
    // several signals outranks one that a single search happens to reach.
    const passing = (idx: number[] | null, ok: boolean, t: number) => {
      const v = idx && ok ? idx[c] / t : 0;
      return v >= 1 ? v : 0;
    };
    const model = passing(patchIdx, patchOk, th.patch) + passing(addIdx, addOk, th.additive) +
      passing(landIdx, landOk, th.landing);
    per.push({
      class: c,
      count: raw.counts[c],
      label_excess: round4(raw.labelExcess[c]),
      landing: roundOrNull(raw.landing?.[c]),
      landing_index: roundOrNull(landIdx?.[c]),
      patch_mask: roundOrNull(raw.patchMask?.[c]),
      patch_success: roundOrNull(raw.patchSuccess?.[c]),
      patch_index: roundOrNull(patchIdx?.[c]),
      additive_success: roundOrNull(raw.additiveSuccess?.[c]),
      additive_index: roundOrNull(addIdx?.[c]),
      score: round4(model),
    });
  }
  const modelSuspects = per.filter((e) => e.score >= 1).map((e) => e.class);
  for (const e of per) {
    const byLabel = e.label_excess / th.label_excess;
    // Label excess corroborates; it overrides only when the model names nobody else.
    if (byLabel >= 1 && (modelSuspects.length === 0 || modelSuspects.includes(e.class))) {
      e.score = round4(e.score + byLabel);
    }
  }
  const ranked = per.filter((e) => e.score >= 1).sort((a, b) =>
    b.score - a.score || a.class - b.class
  );
  // Further suspects must be at least half as anomalous as the first: natural attractors (bag
  // for a small patch, shirt for small perturbations) pass one signal on clean classes too.
  const top = ranked[0]?.score ?? 0;
  const classes = ranked.filter((e) => e.score >= top * SECOND_SUSPECT_SHARE).slice(
    0,
    th.max_suspects,
  ).map((e) => e.class);

  let untargeted: UntargetedEvidence | null = null;
  let allToAll = false;
  if (raw.untargeted) {
    const u = raw.untargeted;
    const destinations = u.flips.map((row, src) => {
      let best = -1, total = 0;
      for (let d = 0; d < row.length; d++) {
        total += row[d];
        if (d !== src && (best < 0 || row[d] > row[best])) best = d;
      }
      return { class: best, share: round4(total > 0 ? row[best] / total : 0) };
    });
    const distinct = new Set(destinations.filter((d) => d.share >= 0.5).map((d) => d.class)).size;
    untargeted = {
      patch_mask: round4(u.mask),
      patch_success: round4(u.success),
      destinations,
      distinct_destinations: distinct,
    };
    allToAll = u.success >= MIN_ALL_TO_ALL_SUCCESS && distinct >= Math.ceil(k / 2);
  }
  return {
    classes: allToAll ? Array.from({ length: k }, (_, c) => c) : classes,
    primary: allToAll ? null : classes[0] ?? null,
    all_to_all: allToAll,
    per_class: per,
    untargeted,
  };
}

/** {@link round4}, with undefined and non-finite values read as null. */
function roundOrNull(v: number | null | undefined): number | null {
  return v === null || v === undefined || !Number.isFinite(v) ? null : round4(v);
}

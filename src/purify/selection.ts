/**
 * Who is clean and who is poisoned: the suspected target class, the first clean set, the PUD
 * consistency score and the re-selection rules applied after a stage. Pure functions on host
 * arrays (logits are row-major `[N, K]`).
 *
 * @module
 */
import { UnprocessableError } from "../errors.ts";
import { CounterRng } from "../random/rng.ts";
import { STREAM } from "./streams.ts";
import type { Rescore, Schedule } from "./schedule.ts";
import { CLEAN, FLAGGED, POOL } from "./state.ts";

/** Index of the largest entry of row `i`; the lowest index wins ties. */
export function rowArgmax(z: Float32Array, i: number, k: number, skip = -1): number {
  let best = -1, bv = -Infinity;
  for (let j = 0; j < k; j++) {
    if (j === skip) continue;
    const v = z[i * k + j];
    if (best < 0 || v > bv) {
      best = j;
      bv = v;
    }
  }
  return best;
}

/**
 * PUD's consistency score (Hua et al. 2024, Section 4): `s = 0.5 + 0.5·cos(z₀, z) − 0.5·[argmax z₀ ≠
 * argmax z]`, in [−0.5, 1]; low means the purified model sees the image differently from the
 * infected one, which is what happens to poisoned images once the backdoor is gone.
 */
export function consistencyScores(
  z0: Float32Array,
  z: Float32Array,
  n: number,
  k: number,
): Float32Array {
  const s = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let dot = 0, a = 0, b = 0;
    for (let j = 0; j < k; j++) {
      const u = z0[i * k + j], v = z[i * k + j];
      dot += u * v;
      a += u * u;
      b += v * v;
    }
    const cos = a > 0 && b > 0 ? dot / Math.sqrt(a * b) : 0;
    const differ = rowArgmax(z0, i, k) !== rowArgmax(z, i, k) ? 1 : 0;
    s[i] = 0.5 + 0.5 * cos - 0.5 * differ;
  }
  return s;
}

export interface SuspectResult {
  class: number | null;
  counts: number[];
  /** `(count − median) / median` of the suspect (or of the largest class when none). */
  excess: number;
}

/**
 * The class whose label count most exceeds the median class count. An all-to-one attack relabels
 * its poisoned images to the target, so the target is over-represented (DESIGN.md: in the lab,
 * about half of the target class is poisoned).
 */
export function suspectClass(
  labels: Int32Array,
  k: number,
  rule: Pick<Schedule["suspect"], "rule" | "min_excess">,
): SuspectResult {
  const counts = new Array<number>(k).fill(0);
  for (const y of labels) counts[y]++;
  const sorted = [...counts].sort((a, b) => a - b);
  const median = k % 2 ? sorted[(k - 1) / 2] : (sorted[k / 2 - 1] + sorted[k / 2]) / 2;
  let top = 0;
  for (let c = 1; c < k; c++) if (counts[c] > counts[top]) top = c;
  const excess = (counts[top] - median) / Math.max(median, 1);
  const suspect = rule.rule !== "none" && excess >= rule.min_excess ? top : null;
  return { class: suspect, counts, excess };
}

/**
 * The first membership vector (every image POOL or CLEAN). `excluded`: the suspected classes
 * whose images stay out of the first clean set (none for an all-to-all suspicion, where every
 * class is a target and only the model's agreement with the label can vouch for an image).
 */
export function initialMembership(
  schedule: Schedule,
  labels: Int32Array,
  z0: Float32Array,
  k: number,
  excluded: readonly number[],
  seed: number,
): Uint8Array {
  const n = labels.length;
  const m = new Uint8Array(n);
  const rule = schedule.initial_clean;
  if (rule.rule === "random") {
    const order = new CounterRng(seed, STREAM.initialClean).shuffle(
      Int32Array.from({ length: n }, (_, i) => i),
    );
    const take = Math.max(1, Math.round(rule.fraction * n));
    for (let i = 0; i < take; i++) m[order[i]] = CLEAN;
  } else {
    for (let i = 0; i < n; i++) {
      if (!excluded.includes(labels[i]) && rowArgmax(z0, i, k) === labels[i]) m[i] = CLEAN;
    }
  }
  if (!m.includes(CLEAN)) {
    throw new UnprocessableError(
      "no image qualifies for the first clean set (the infected model disagrees with every " +
        "label outside the suspected target class): check that the labels match the model's classes",
    );
  }
  return m;
}

/**
 * Otsu's threshold (Otsu, "A Threshold Selection Method from Gray-Level Histograms", 1979) on
 * `values` over a 256-bin histogram: the cut that maximises the between-class variance, i.e. the
 * split of a 1-D 2-means. Values at or above `cut` form the upper group. `separation` is the
 * between-class share of the total variance at that cut (2/π ≈ 0.64 for a single Gaussian, near
 * 1 for two well separated groups). Equal values give `cut = Infinity`, `separation = 0`.
 */
export function otsuSplit(
  values: ArrayLike<number>,
  bins = 256,
): { cut: number; separation: number } {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  if (!(hi > lo)) return { cut: Infinity, separation: 0 };
  const width = (hi - lo) / bins;
  const hist = new Float64Array(bins);
  let mean = 0;
  for (let i = 0; i < values.length; i++) {
    hist[Math.min(bins - 1, Math.floor((values[i] - lo) / width))]++;
    mean += values[i];
  }
  const total = values.length;
  mean /= total;
  let variance = 0;
  for (let i = 0; i < values.length; i++) variance += (values[i] - mean) ** 2;
  variance /= total;
  let sumAll = 0;
  for (let b = 0; b < bins; b++) sumAll += (b + 0.5) * hist[b];
  let wB = 0, sumB = 0, best = -1, cut = 1;
  for (let b = 0; b < bins - 1; b++) {
    wB += hist[b];
    sumB += (b + 0.5) * hist[b];
    const wF = total - wB;
    if (wB === 0 || wF === 0) continue;
    const mB = sumB / wB, mF = (sumAll - sumB) / wF;
    const between = (wB / total) * (wF / total) * (mB - mF) ** 2;
    if (between > best) {
      best = between;
      cut = b + 1;
    }
  }
  const separation = variance > 0 ? Math.min(1, (best * width * width) / variance) : 0;
  return { cut: lo + cut * width, separation };
}

/**
 * Suspicion as reported: with scope `suspect` and suspected classes, images of other classes
 * rank below every image of a suspected class (only those can be flagged), so one ranking serves
 * the whole set.
 */
export function scopedSuspicion(
  u: Float32Array,
  labels: Int32Array,
  rule: Rescore,
  suspects: readonly number[],
): Float32Array {
  if (rule.scope !== "suspect" || suspects.length === 0) return u;
  const inScope = (i: number) => suspects.includes(labels[i]);
  let lo = Infinity, max = -Infinity;
  for (let i = 0; i < u.length; i++) {
    if (inScope(i)) lo = Math.min(lo, u[i]);
    else max = Math.max(max, u[i]);
  }
  if (!Number.isFinite(lo) || !Number.isFinite(max)) return u;
  // Shift the others so that their maximum sits just below the suspects' minimum.
  const shift = lo - 1 - max;
  return u.map((v, i) => (inScope(i) ? v : v + shift));
}

/**
 * Per-image suspicion (higher = more likely poisoned) under a rescore's `score`: `−s` for PUD
 * consistency; for `suspect_drop`, how far the logit of the image's own label fell from the
 * infected model's when that label is a suspect (a poisoned image of any attack mode carries the
 * label the backdoor answers), else the largest fall over the suspects' logits (consistency when
 * nothing is suspected).
 */
export function suspicion(
  score: Rescore["score"],
  z0: Float32Array,
  z: Float32Array,
  labels: Int32Array,
  k: number,
  suspects: readonly number[],
): Float32Array {
  const n = labels.length;
  if (score === "suspect_drop" && suspects.length > 0) {
    return Float32Array.from({ length: n }, (_, i) => {
      const y = labels[i];
      if (suspects.includes(y)) return z0[i * k + y] - z[i * k + y];
      let best = -Infinity;
      for (const t of suspects) best = Math.max(best, z0[i * k + t] - z[i * k + t]);
      return best;
    });
  }
  return consistencyScores(z0, z, n, k).map((v) => -v);
}

export interface GroupSplit {
  /** The suspected class the group holds, or null for the whole set. */
  class: number | null;
  threshold: number | null;
  separation: number | null;
  bimodal: boolean;
  flagged: number;
}

export interface Reselection {
  membership: Uint8Array;
  /** For every flagged image, the class the current model ranks highest other than its label. */
  relabel: Int32Array;
  newlyFlagged: number;
  /** Otsu's cut on the suspicion of the ranked images, and its separation (the best group's). */
  threshold: number | null;
  separation: number | null;
  /** Whether split rules acted (separation ≥ min_separation) in any group. */
  bimodal: boolean;
  /** Each ranked group: one per suspected class with scope `suspect`, else the whole set. */
  groups: GroupSplit[];
}

/** Indices sorted by suspicion, most suspicious first, ties by index. */
function bySuspicion(candidates: number[], u: Float32Array): number[] {
  return candidates.sort((a, b) => u[b] - u[a] || a - b);
}

/**
 * Applies a stage's rescore rule to per-image suspicion `u` (see {@link suspicion}). Flags are
 * never lifted; the clean set is rebuilt from never-flagged images only, so an image once
 * condemned cannot return (the published fixed growth rates re-admitted poison, DESIGN.md).
 *
 * Scope `suspect` with suspected classes: only images labelled with a suspect are ranked, each
 * suspected class split on its own (an all-to-one attack relabels every poisoned image to its
 * target; a clean-label one poisons a fraction of the target's own images; an all-to-all one
 * makes every class a group), while never-flagged images of other classes are all clean. Scope
 * `all` (or no suspect): the whole set is ranked together.
 *
 * - flag `split`: ranked images at or above Otsu's cut of their group's suspicions, at most
 *   `max_fraction`·N of the most suspicious in all (none when the score is `suspect_drop` and no
 *   class is suspected); with the consistency score also only those whose current prediction
 *   differs from the infected model's and from their own label (a poisoned image keeps its
 *   target label while the purified model sees its content class). Nothing in a group whose
 *   suspicions are not bimodal. `fraction`: the most suspicious `fraction`·N of each group.
 * - clean `split`: ranked never-flagged images below their group's cut (all of them when not
 *   bimodal). `fraction`: the least suspicious `fraction`·N of each group's never-flagged images.
 */
export function reselect(
  rule: Rescore,
  u: Float32Array,
  z0: Float32Array,
  z: Float32Array,
  labels: Int32Array,
  membership: Uint8Array,
  k: number,
  suspects: readonly number[],
): Reselection {
  const n = labels.length;
  const m = new Uint8Array(n);
  const scoped = rule.scope === "suspect" && suspects.length > 0;
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (membership[i] === FLAGGED) m[i] = FLAGGED;
    else if (scoped && !suspects.includes(labels[i])) m[i] = CLEAN;
    else {
      const g = scoped ? labels[i] : -1;
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(i);
    }
  }
  // The suspect-drop score needs a suspected class: without one (no label stands out, as on
  // clean data) a split rule condemns nobody, rather than the hard images a consistency split
  // would pick (measured: 127 of an all-clean 2,000-image Fashion-MNIST set, then unlearned).
  const noEvidence = rule.score === "suspect_drop" && suspects.length === 0;
  const byDrop = rule.score === "suspect_drop" && suspects.length > 0;
  let newly = 0;
  let capLeft = rule.flag.rule === "split" ? Math.floor(rule.flag.max_fraction * n) : Infinity;
  const splits: GroupSplit[] = [];
  const stillOpen: number[] = [];
  for (const g of [...groups.keys()].sort((a, b) => a - b)) {
    const open = groups.get(g)!;
    const { cut, separation } = open.length > 1
      ? otsuSplit(Float32Array.from(open, (i) => u[i]))
      : { cut: Infinity, separation: 0 };
    const bimodal = !noEvidence && separation >= rule.min_separation;
    let flaggedHere = 0;
    if (rule.flag.rule === "split") {
      const cands = !bimodal ? [] : open.filter((i) => {
        if (u[i] < cut) return false;
        if (byDrop) return true;
        const now = rowArgmax(z, i, k);
        return now !== rowArgmax(z0, i, k) && now !== labels[i];
      });
      for (const i of bySuspicion(cands, u).slice(0, Math.max(0, capLeft))) {
        m[i] = FLAGGED;
        flaggedHere++;
      }
      capLeft -= flaggedHere;
    } else {
      const take = Math.round(rule.flag.fraction * n);
      for (const i of bySuspicion([...open], u).slice(0, take)) {
        m[i] = FLAGGED;
        flaggedHere++;
      }
    }
    newly += flaggedHere;
    const left = open.filter((i) => m[i] !== FLAGGED);
    stillOpen.push(...left);
    if (rule.clean.rule === "split") {
      for (const i of left) m[i] = !bimodal || u[i] < cut ? CLEAN : POOL;
    } else {
      const take = Math.round(rule.clean.fraction * n);
      const ranked = bySuspicion(left, u).reverse();
      for (let j = 0; j < ranked.length; j++) m[ranked[j]] = j < take ? CLEAN : POOL;
    }
    splits.push({
      class: g < 0 ? null : g,
      threshold: Number.isFinite(cut) ? cut : null,
      separation: open.length > 1 ? separation : null,
      bimodal,
      flagged: flaggedHere,
    });
  }
  if (!m.includes(CLEAN)) {
    // Keep training possible: the least suspicious never-flagged image is always clean.
    const best = bySuspicion(stillOpen, u).pop();
    if (best !== undefined) m[best] = CLEAN;
  }
  const relabel = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) if (m[i] === FLAGGED) relabel[i] = rowArgmax(z, i, k, labels[i]);
  const best = splits.reduce<GroupSplit | undefined>(
    (b, g) => (b === undefined || (g.separation ?? -1) > (b.separation ?? -1) ? g : b),
    undefined,
  );
  return {
    membership: m,
    relabel,
    newlyFlagged: newly,
    threshold: best?.threshold ?? null,
    separation: best?.separation ?? null,
    bimodal: splits.some((g) => g.bimodal),
    groups: splits,
  };
}

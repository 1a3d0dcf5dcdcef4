/**
 * From scores to flags. Every rule works within each label class (a backdoor's poisoned images
 * share the label they were relabelled to, and score scales differ between classes), and only
 * flags scores strictly above the class's cut, so ties and constant scores never flag at random.
 *
 * - `top_fraction`: the top `round(fraction·n_c)` of each class (Tran et al. 2018 remove the top
 *   1.5·ε, ε the expected poison rate). Flags that many whether or not anything is poisoned.
 * - `mad`: robust z-score `0.6745·(s − median)/MAD` above `cut` (default 3.5, Iglewicz & Hoaglin
 *   1993). Breaks down once half a class is poisoned: the median then lies among the poison.
 * - `fpr`: derived from the distribution, so that clean classes flag at most `fpr` of their
 *   images while a class judged poisoned can flag far more. See {@link fprCuts}.
 *
 * @module
 */
import { quantile } from "./linalg.ts";

export type FlagRule =
  | { rule: "top_fraction"; fraction: number }
  | { rule: "mad"; cut: number }
  | { rule: "fpr"; fpr: number };

/** The cut of one class: flag `score > cut`; null when the class is too small or degenerate. */
export interface ClassCut {
  class: number;
  n: number;
  cut: number | null;
  flagged: number;
}

export interface Flagging {
  flags: Uint8Array;
  threshold: { rule: string; value: number; description: string };
  perClass: ClassCut[];
}

/** Classes with fewer images than this get no distribution-based cut (quantiles of 7 say little). */
export const MIN_CLASS_FOR_DISTRIBUTION = 8;

/**
 * The quantiles that stand in for the clean bulk of a class under the `fpr` rule. All lie below
 * 0.45, so they describe clean images while poison is under about half the class and scores
 * high (the all-to-one target class, about half poison, is why the median is not used); the
 * spread covers 40% of the class, which measured steadier than Q40 − Q10 on small classes.
 */
const BULK_LO = 0.05, BULK_MID = 0.25, BULK_HI = 0.45;

/**
 * Share of `fpr` aimed at: the cross-class estimate is noisy, so the cut aims at half the
 * allowance (clean classes then flag 0.55-0.6·fpr on average in simulation).
 */
const FPR_MARGIN = 0.5;

/** Largest poison share assumed when re-reading a class's bulk. */
const MAX_POISON_SHARE = 0.7;
/** A class flagging more than this many times `fpr` on the first pass may be poisoned... */
const CONTAMINATION_FACTOR = 3;
/** ...and more than this many images (a handful of tail images is noise at small fpr)... */
const MIN_EXCESS = 10;
/** ...and its own proposal is also this many robust deviations above the median proposal. */
const PROPOSAL_Z = 6;
/** Robust z-score over classes of Otsu's eta above which a class counts as two-moded. */
const BIMODAL_Z = 3;
/**
 * ...and the least excess of its eta over the median class's: eta is scale-free in [0, 1]
 * (0.64 for a Gaussian, 0.75 for a uniform), and when every class has nearly the same eta a
 * z-score alone calls noise an outlier. Poisoned classes measured 0.17-0.23 above the median.
 */
const BIMODAL_MIN_GAP = 0.1;

/** Indices of each class present in `groups`, ascending by class. */
export function byClass(groups: ArrayLike<number>): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    let list = m.get(g);
    if (list === undefined) m.set(g, list = []);
    list.push(i);
  }
  return new Map([...m.entries()].sort((a, b) => a[0] - b[0]));
}

function sortedScores(scores: ArrayLike<number>, idx: number[]): Float64Array {
  return Float64Array.from(idx, (i) => scores[i]).sort();
}

/** One class under the `fpr` rule. */
export interface FprClass {
  class: number;
  n: number;
  /** Q(0.25) of the clean bulk (re-read for a class judged poisoned). */
  loc: number;
  /** Q(0.45) − Q(0.05) of the clean bulk; null when the class is too small or degenerate. */
  scale: number | null;
  /** Estimated poison share; 0 when the class is not judged poisoned. */
  poisonShare: number;
  /** Flag scores strictly above this; null: flag none. */
  cut: number | null;
}

/** Location and scale of the clean bulk of a sorted class, `clean` its assumed clean share. */
function bulk(s: Float64Array, clean: number): { loc: number; scale: number | null } {
  // Clean scores sit below the poison, so the clean part's quantile p is the class's p·clean.
  const loc = quantile(s, BULK_MID * clean);
  let scale = quantile(s, BULK_HI * clean) - quantile(s, BULK_LO * clean);
  // Heavy ties in the bulk: widen to the whole lower half, then give up on the class.
  if (!(scale > 0)) scale = quantile(s, 0.5 * clean) - s[0];
  return { loc, scale: scale > 0 && isFinite(scale) ? scale : null };
}

/**
 * Otsu's two-group split of a sorted class (Otsu 1979): the cut maximising the between-group
 * variance, `eta` = that variance over the total (about 0.64 for one Gaussian mode, near 1 for
 * two well-separated ones) and the share above the cut.
 */
export function otsuSplit(s: Float64Array): { eta: number; upperShare: number } {
  const n = s.length;
  let total = 0, sq = 0;
  for (const v of s) {
    total += v;
    sq += v * v;
  }
  const variance = sq / n - (total / n) ** 2;
  if (!(variance > 0)) return { eta: 0, upperShare: 0 };
  let best = 0, at = n;
  let below = 0;
  for (let i = 1; i < n; i++) {
    below += s[i - 1];
    if (s[i] === s[i - 1]) continue;
    const w0 = i / n, w1 = 1 - w0;
    const m0 = below / i, m1 = (total - below) / (n - i);
    const between = w0 * w1 * (m0 - m1) ** 2;
    if (between > best) {
      best = between;
      at = i;
    }
  }
  return { eta: best / variance, upperShare: (n - at) / n };
}

/**
 * Classes whose scores split into two modes far more cleanly than the other classes' do:
 * Otsu's `eta` a robust z-score above {@link BIMODAL_Z} over the classes (3 or more needed) and
 * at least {@link BIMODAL_MIN_GAP} above the median, with an upper group over `2·fpr` of the
 * class.
 */
function bimodalClasses(
  sorted: Map<number, Float64Array>,
  fpr: number,
): Map<number, { eta: number; upperShare: number; bimodal: boolean }> {
  const out = new Map<number, { eta: number; upperShare: number; bimodal: boolean }>();
  for (const [c, s] of sorted) {
    if (s.length >= MIN_CLASS_FOR_DISTRIBUTION) out.set(c, { ...otsuSplit(s), bimodal: false });
  }
  if (out.size < 3) return out;
  const etas = Float64Array.from([...out.values()].map((v) => v.eta)).sort();
  const med = quantile(etas, 0.5);
  const mad = quantile(etas.map((e) => Math.abs(e - med)).sort(), 0.5) / 0.6745;
  for (const v of out.values()) {
    v.bimodal = v.eta - med > BIMODAL_MIN_GAP && (mad === 0 || (v.eta - med) / mad > BIMODAL_Z) &&
      v.upperShare > 2 * fpr;
  }
  return out;
}

/** Scores of sorted `s` strictly above `cut`. */
function countAbove(s: Float64Array, cut: number): number {
  let k = 0;
  for (let i = s.length - 1; i >= 0 && s[i] > cut; i--) k++;
  return k;
}

/**
 * Per-class cuts of the `fpr` rule. Within class c, scores are put on a common scale using only
 * the bulk of the class: `z = (s − Q(0.25)) / (Q(0.45) − Q(0.05))`. Each class with at least
 * {@link MIN_CLASS_FOR_DISTRIBUTION} images proposes the `1 − fpr/2` quantile of its own z; the
 * z-cut is the median of the proposals over classes, so one (or a few) poisoned classes, whose
 * upper tail is the poison, cannot move it. This assumes clean classes' scores share a shape up
 * to location and scale (true of a detector's scores on a model's clean classes; no Gaussian
 * assumption). With one class, its own quantile is used.
 *
 * A class not judged poisoned is cut at `loc + zCut·scale`, but never below its own order
 * statistic that leaves `floor(fpr·n)` above: it can flag at most fpr of its images.
 *
 * A class is judged poisoned when
 * - its scores split into two modes far more cleanly than the other classes' do (Otsu's
 *   separation an outlier among classes, see `bimodalClasses`): π = the upper mode's share; or
 * - it flags over 3·fpr of its images and over 10 images, AND its own proposal lies 6 robust
 *   deviations above the median proposal (3 or more classes): π = the share flagged beyond
 *   fpr/2. (A planted 10% at +6σ measured 19 deviations out; at 3, chance misestimates of a
 *   clean Gaussian class's bulk tripped the test in simulation.)
 * Poison in a class's upper part shifts its quantiles up (at half poison, the class's Q(0.25) is
 * the clean part's median), which inflates its bulk and lets the cut pass over the poison; so a
 * poisoned class's bulk is re-read at the clean part's quantiles, `Q(p·(1 − π))`, and it is cut
 * at `loc + zCut·scale` without the cap. One step, no iteration: on STRIP scores of a Blend
 * backdoor, where poison overlaps the clean tail, re-estimating from each step's flags drifted
 * back to π = 0.
 *
 * Clean data can only exceed fpr through a class falsely judged poisoned. Simulated (200 draws
 * each of 5-10 classes × 150-450 clean scores with random location and scale, fpr 0.01-0.1),
 * the flagged share averaged 0.55-0.6·fpr; the worst draw stayed under 0.8·fpr for Gaussian,
 * χ²₁ and exponential shapes (no class judged poisoned), and reached 1.4-2.6·fpr for
 * heavy-tailed (Student t3) shapes, whose extreme tails do look like planted outliers.
 */
export function fprCuts(
  scores: ArrayLike<number>,
  groups: ArrayLike<number>,
  fpr: number,
): {
  zCut: number;
  classes: FprClass[];
} {
  const level = 1 - fpr * FPR_MARGIN;
  const sorted = new Map<number, Float64Array>();
  const classes: FprClass[] = [];
  const proposals: number[] = [];
  const proposalOf = new Map<number, number>();
  for (const [c, idx] of byClass(groups)) {
    const s = sortedScores(scores, idx);
    sorted.set(c, s);
    if (idx.length < MIN_CLASS_FOR_DISTRIBUTION) {
      // Too few scores for a distribution: their median stands for the location (never NaN).
      const loc = s.length ? s[s.length >> 1] : 0;
      classes.push({ class: c, n: idx.length, loc, scale: null, poisonShare: 0, cut: null });
      continue;
    }
    const { loc, scale } = bulk(s, 1);
    classes.push({ class: c, n: idx.length, loc, scale, poisonShare: 0, cut: null });
    if (scale !== null) {
      const u = quantile(s.map((v) => (v - loc) / scale), level);
      proposals.push(u);
      proposalOf.set(c, u);
    }
  }
  proposals.sort((a, b) => a - b);
  const zCut = proposals.length > 0 ? quantile(proposals, 0.5) : Infinity;
  if (!isFinite(zCut)) return { zCut, classes };
  // How far proposals stray from the median by chance: a poisoned class's lies far beyond.
  const spread = quantile(proposals.map((u) => Math.abs(u - zCut)).sort((a, b) => a - b), 0.5) /
    0.6745;
  const otsu = bimodalClasses(sorted, fpr);

  for (const k of classes) {
    if (k.scale === null) continue;
    const s = sorted.get(k.class)!;
    const flagged = countAbove(s, k.loc + zCut * k.scale);
    const split = otsu.get(k.class);
    let poisonShare = 0;
    if (split?.bimodal) poisonShare = split.upperShare;
    else if (
      proposals.length >= 3 && flagged > Math.max(CONTAMINATION_FACTOR * fpr * k.n, MIN_EXCESS) &&
      proposalOf.get(k.class)! - zCut > PROPOSAL_Z * spread
    ) {
      poisonShare = flagged / k.n - fpr * FPR_MARGIN;
    }
    const b = poisonShare > 0 ? bulk(s, 1 - Math.min(MAX_POISON_SHARE, poisonShare)) : undefined;
    if (b !== undefined && b.scale !== null) {
      k.loc = b.loc;
      k.scale = b.scale;
      k.poisonShare = Math.min(MAX_POISON_SHARE, poisonShare);
      k.cut = k.loc + zCut * k.scale;
    } else {
      // Not judged poisoned: whatever the estimate, never more than fpr of the class.
      const cap = s[Math.max(0, s.length - 1 - Math.floor(fpr * s.length))];
      k.cut = Math.max(k.loc + zCut * k.scale, cap);
    }
  }
  return { zCut, classes };
}

/**
 * Flags from scores by `rule`, per class of `groups` (normally the labels). `eligible`, when
 * given, restricts flags to images with a 1 there (cuts are still computed from every image).
 */
export function flagByRule(
  scores: ArrayLike<number>,
  groups: ArrayLike<number>,
  rule: FlagRule,
  eligible?: ArrayLike<number>,
): Flagging {
  const n = scores.length;
  const flags = new Uint8Array(n);
  const perClass: ClassCut[] = [];
  const mark = (idx: number[], cut: number | null, c: number) => {
    let flagged = 0;
    if (cut !== null) {
      for (const i of idx) {
        if (scores[i] > cut && (eligible === undefined || eligible[i] !== 0)) {
          flags[i] = 1;
          flagged++;
        }
      }
    }
    perClass.push({ class: c, n: idx.length, cut, flagged });
  };

  if (rule.rule === "top_fraction") {
    for (const [c, idx] of byClass(groups)) {
      const s = sortedScores(scores, idx);
      const m = Math.round(rule.fraction * idx.length);
      // Strictly above the (m+1)-th largest: ties at the boundary stay unflagged.
      mark(idx, m <= 0 ? null : m >= idx.length ? s[0] - 1 : s[idx.length - m - 1], c);
    }
    return {
      flags,
      perClass,
      threshold: {
        rule: "top_fraction",
        value: rule.fraction,
        description: `the top ${
          fmt(rule.fraction * 100)
        }% of each class by score (ties at the cut unflagged)`,
      },
    };
  }

  if (rule.rule === "mad") {
    for (const [c, idx] of byClass(groups)) {
      if (idx.length < 3) {
        mark(idx, null, c);
        continue;
      }
      const s = sortedScores(scores, idx);
      const med = quantile(s, 0.5);
      const dev = s.map((v) => Math.abs(v - med)).sort();
      let spread = quantile(dev, 0.5) / 0.6745;
      // MAD of 0 (over half the class tied): fall back to the mean absolute deviation.
      if (!(spread > 0)) spread = dev.reduce((a, b) => a + b, 0) / dev.length * 1.2533;
      mark(idx, spread > 0 ? med + rule.cut * spread : null, c);
    }
    return {
      flags,
      perClass,
      threshold: {
        rule: "mad",
        value: rule.cut,
        description: `robust z-score 0.6745·(score − median)/MAD above ${
          fmt(rule.cut)
        } within each class`,
      },
    };
  }

  const { zCut, classes } = fprCuts(scores, groups, rule.fpr);
  const groupsByClass = byClass(groups);
  for (const k of classes) {
    const idx = groupsByClass.get(k.class)!;
    mark(idx, k.cut, k.class);
  }
  return {
    flags,
    perClass,
    threshold: {
      rule: "fpr",
      value: zCut,
      description: `scores above Q25 + ${fmt(zCut)}·(Q45 − Q5) of their class: the median over ` +
        `classes of each class's ${fmt(100 * (1 - rule.fpr * FPR_MARGIN))}th percentile on that ` +
        `scale, so clean classes flag under ${fmt(rule.fpr * 100)}%`,
    },
  };
}

function fmt(v: number): string {
  return Number(v.toPrecision(3)).toString();
}

/**
 * An AutoAttack-style ensemble: Croce & Hein, "Reliable evaluation of adversarial robustness with
 * an ensemble of diverse parameter-free attacks", ICML 2020. The members run in the standard order
 * APGD-CE → APGD-T (targeted DLR) → Square (black-box), each only on the images every earlier
 * member left correctly classified; the first success per image is kept, so the result is the
 * worst case per image over the members. FAB-T, the paper's third member, is left out: on the
 * paper's own tables it adds next to nothing once APGD-T has run, and it costs a gradient per
 * class per step.
 *
 * Versions (steps and restarts per member; queries are forward passes):
 *
 * | version    | APGD-CE             | APGD-T                          | Square                 |
 * |------------|---------------------|---------------------------------|------------------------|
 * | `standard` | 100 steps, 1 restart | 9 targets × 100 steps, 1 restart | 5000 queries, 1 restart |
 * | `fast`     | 50 steps, 1 restart  | 3 targets × 50 steps, 1 restart  | 1000 queries, 1 restart |
 *
 * `standard` is the paper's standard setting (less FAB-T); `fast` is for pipelines that evaluate
 * often (a purification schedule), at about a fifth of the cost.
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../model/classifier.ts";
import { yieldPoint } from "../tensor/yield_point.ts";
import { apgd } from "./apgd.ts";
import { apgdTargeted } from "./apgd_t.ts";
import { attackRemaining } from "./cascade_step.ts";
import { minClasses } from "./losses.ts";
import { deriveSeed } from "../random/rng.ts";
import { square } from "./square.ts";
import { type AttackResult, DEFAULT_EPS, type Norm } from "./types.ts";

/** The members, in the order they run. */
export const MEMBERS = ["apgd-ce", "apgd-t", "square"] as const;
export type Member = typeof MEMBERS[number];
export type Version = "standard" | "fast";

/** Per member: the settings of each version (see the module doc's table). */
export const VERSIONS: Record<Version, {
  "apgd-ce": { steps: number; restarts: number };
  "apgd-t": { targets: number; steps: number; restarts: number };
  square: { queries: number; restarts: number; pInit: number };
}> = {
  standard: {
    "apgd-ce": { steps: 100, restarts: 1 },
    "apgd-t": { targets: 9, steps: 100, restarts: 1 },
    square: { queries: 5000, restarts: 1, pInit: 0.8 },
  },
  fast: {
    "apgd-ce": { steps: 50, restarts: 1 },
    "apgd-t": { targets: 3, steps: 50, restarts: 1 },
    square: { queries: 1000, restarts: 1, pInit: 0.8 },
  },
};

/** Whether a member reads gradients (white-box) or only scores (black-box). */
export const BLACK_BOX: Record<Member, boolean> = {
  "apgd-ce": false,
  "apgd-t": false,
  square: true,
};

/** Fewest classes a model needs for `members`: APGD-T's targeted DLR reads the 4th largest logit. */
export function ensembleMinClasses(members: readonly Member[]): number {
  return members.includes("apgd-t") ? minClasses("dlr", true) : 2;
}

/**
 * Upper bound of the work one image may need: gradient evaluations of the APGD members plus
 * Square's queries, each counted as one unit. A Square query is one forward pass, which measured
 * 0.24× of a gradient evaluation (forward and backward) on the lab's Fashion-MNIST CNN on wasm
 * (`deno run -A bench/autoattack.ts --unit-cost --images 0 DIR`), so counting it as a whole unit
 * over-states Square's share about 4×: the bound stays an upper bound.
 */
export function autoAttackCostPerImage(version: Version, members: readonly Member[]): number {
  const v = VERSIONS[version];
  let cost = 0;
  if (members.includes("apgd-ce")) cost += v["apgd-ce"].steps * v["apgd-ce"].restarts;
  if (members.includes("apgd-t")) {
    cost += v["apgd-t"].targets * v["apgd-t"].steps * v["apgd-t"].restarts;
  }
  if (members.includes("square")) cost += v.square.queries * v.square.restarts;
  return cost;
}

export interface AutoAttackOptions {
  /** Default {@link DEFAULT_EPS}. */
  eps?: number;
  /** Default `"linf"`. */
  norm?: Norm;
  /** Default `"standard"`. */
  version?: Version;
  /** Members to run (always in the standard order). Default all of {@link MEMBERS}. */
  members?: readonly Member[];
  /** Seeds every member (member m draws from `deriveSeed(seed, m)`). Default 0. */
  seed?: number;
  signal?: AbortSignal;
}

export interface MemberOutcome {
  member: Member;
  /** Images this member ran on (those still correct before it). */
  attacked: number;
  /** Images it broke (first success). */
  broken: number;
  /** Gradient evaluations (APGD members) or forward passes (Square). */
  queries: number;
  time_ms: number;
}

export interface AutoAttackResult extends AttackResult {
  /** Per image: the member that broke it first, `"clean"` if misclassified before any attack. */
  brokenBy: (Member | "clean" | null)[];
  members: MemberOutcome[];
}

/**
 * Runs the ensemble against `clf` on clean images `x` (`[N, H, W, C]` in [0,1]) with true labels
 * `y` (int32 `[N]`), untargeted.
 *
 * @returns per image the first successful adversarial image (else the clean image), success =
 *   misclassified, predictions, who broke it, and per member the images attacked and broken.
 * @throws {UnprocessableError} APGD-T on a model with fewer than 4 classes, bad numbers.
 */
export async function autoAttack(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: AutoAttackOptions = {},
): Promise<AutoAttackResult> {
  const eps = options.eps ?? DEFAULT_EPS;
  const norm = options.norm ?? "linf";
  const v = VERSIONS[options.version ?? "standard"];
  const members = MEMBERS.filter((m) => (options.members ?? MEMBERS).includes(m));
  const seed = options.seed ?? 0;
  const [n, h, w, c] = x.shape;
  const labels = Int32Array.from(await y.data());
  const adv = Float32Array.from(await x.data());
  const cleanPred = tf.tidy(() => tf.cast(tf.argMax(clf.logits(x, false), 1), "int32"));
  let predictions: Int32Array;
  try {
    predictions = Int32Array.from(await cleanPred.data());
  } finally {
    cleanPred.dispose();
  }
  const brokenBy: AutoAttackResult["brokenBy"] = Array.from(
    predictions,
    (p, i) => p !== labels[i] ? "clean" : null,
  );
  const outcomes: MemberOutcome[] = [];
  let queries = 0;

  for (const [mi, member] of members.entries()) {
    const t0 = performance.now();
    const idx = [...brokenBy.keys()].filter((i) => brokenBy[i] === null);
    const outcome: MemberOutcome = {
      member,
      attacked: idx.length,
      broken: 0,
      queries: 0,
      time_ms: 0,
    };
    outcomes.push(outcome);
    if (idx.length === 0) continue;
    await yieldPoint(options.signal);
    const s = deriveSeed(seed, mi);
    try {
      const step = await attackRemaining(
        x,
        y,
        idx,
        { adv, predictions },
        (xs, ys) =>
          member === "apgd-ce"
            ? apgd(clf, xs, ys, {
              eps,
              norm,
              ...v["apgd-ce"],
              loss: "ce",
              earlyStop: true,
              seed: s,
              signal: options.signal,
            })
            : member === "apgd-t"
            ? apgdTargeted(clf, xs, ys, {
              eps,
              norm,
              ...v["apgd-t"],
              seed: s,
              signal: options.signal,
            })
            : square(clf, xs, ys, { eps, norm, ...v.square, seed: s, signal: options.signal }),
      );
      for (const i of step.broken) brokenBy[i] = member;
      outcome.broken = step.broken.length;
      outcome.queries = step.queries;
      queries += step.queries;
    } finally {
      outcome.time_ms = Math.round(performance.now() - t0);
    }
  }
  return {
    adversarial: tf.tensor4d(adv, [n, h, w, c]),
    success: brokenBy.map((b) => b !== null),
    predictions,
    queries,
    brokenBy,
    members: outcomes,
  };
}

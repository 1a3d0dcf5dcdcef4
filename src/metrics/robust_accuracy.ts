/**
 * Robust accuracy: the share of images the model still classifies correctly under an untargeted
 * L-inf attack; an image wrong before the attack counts as not robust. Two attacks:
 *
 * - `pgd` (default): PGD-20 at eps 8/255, step eps/4 (2/255), one random start (Madry et al.,
 *   "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018), the customary
 *   evaluation attack, and the weakest credible one;
 * - `autoattack`: the ensemble of `attacks/autoattack.ts` (APGD-CE → APGD-T → Square; Croce &
 *   Hein, ICML 2020), robust accuracy after each member and the worst case per image, the figure
 *   RobustBench accepts.
 *
 * Every report carries a gradient-masking check (`attacks/gradient_masking.ts`). For the
 * ensemble it comes from its black-box member. For PGD, unless `maskingCheck` is false, three more
 * attacks run on the same images: PGD with a quarter of the steps, PGD at twice the eps, and a
 * short Square Attack ({@link MASKING_SQUARE_QUERIES} queries) on the images PGD left correct.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  autoAttack,
  autoAttackCostPerImage,
  type Member,
  MEMBERS,
  type Version,
} from "../attacks/autoattack.ts";
import { addOutcomes, ensembleReport, type MemberReport } from "../attacks/ensemble_report.ts";
import { pgd } from "../attacks/pgd.ts";
import { deriveSeed } from "../random/rng.ts";
import { square } from "../attacks/square.ts";
import { DEFAULT_EPS } from "../attacks/types.ts";
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";
import { yieldPoint } from "../tensor/yield_point.ts";
import { type ClassFigure, figures } from "./accuracy.ts";
import { checkLabels } from "../io/label_checks.ts";
import { checkMasking, type MaskingCheck } from "../attacks/gradient_masking.ts";

/** PGD's default steps for robust accuracy. */
export const PGD_STEPS = 20;
/** PGD's default step size as a fraction of eps (2/255 at 8/255). */
export const PGD_STEP_FRACTION = 1 / 4;
/** Images attacked together by default. */
export const ROBUST_BATCH = 128;
/** Square's queries per image in the PGD masking check (a forward pass each). */
export const MASKING_SQUARE_QUERIES = 200;

export interface RobustOptions {
  /** Default `"pgd"`. */
  attack?: "pgd" | "autoattack";
  /** L-inf budget in [0,1] pixel units. Default 8/255. */
  eps?: number;
  /** PGD steps. Default {@link PGD_STEPS}. */
  steps?: number;
  /** PGD step size. Default eps/4. */
  stepSize?: number;
  /** PGD random restarts; an image counts as robust only if it survives all. Default 1. */
  restarts?: number;
  /** The ensemble's version. Default `"standard"`. */
  version?: Version;
  /** The ensemble's members (standard order). Default all. */
  members?: readonly Member[];
  /** PGD only: run the masking sweeps and the short Square check. Default true. */
  maskingCheck?: boolean;
  /** Seeds the random starts. Default 0. */
  seed?: number;
  /** Images attacked together. Default {@link ROBUST_BATCH}. */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface RobustReport {
  /** Share still correctly classified under the attack (the worst case for the ensemble); null
   * for an empty set. */
  robust_accuracy: number | null;
  robust: number;
  total: number;
  attack:
    | {
      name: "pgd";
      norm: "linf";
      eps: number;
      steps: number;
      step_size: number;
      restarts: number;
    }
    | { name: "autoattack"; norm: "linf"; eps: number; version: Version; members: Member[] };
  per_class: ClassFigure[];
  /** The ensemble only: robust accuracy after each member. */
  members?: MemberReport[];
  /** The lowest robust accuracy any attack of the report measured (PGD: with the Square check). */
  worst_case_robust_accuracy: number | null;
  gradient_masking: MaskingCheck;
}

/** The settings with every default filled in. */
function settings(opts: RobustOptions) {
  const eps = opts.eps ?? DEFAULT_EPS;
  return {
    attack: opts.attack ?? "pgd",
    eps,
    steps: opts.steps ?? PGD_STEPS,
    stepSize: opts.stepSize ?? eps * PGD_STEP_FRACTION,
    restarts: opts.restarts ?? 1,
    version: opts.version ?? "standard",
    members: MEMBERS.filter((m) => (opts.members ?? MEMBERS).includes(m)),
    maskingCheck: opts.maskingCheck ?? true,
    seed: opts.seed ?? 0,
    batchSize: opts.batchSize ?? ROBUST_BATCH,
  };
}

/** PGD with a quarter of the steps, for the masking sweep. */
const fewerSteps = (steps: number) => Math.max(1, Math.round(steps / 4));

/**
 * Upper bound of image passes (gradient evaluations or forward passes) `robustAccuracy` may need
 * on `n` images, the unit of `MAX_ATTACK_COST`.
 */
export function robustCost(opts: RobustOptions, n: number): number {
  const s = settings(opts);
  if (s.attack === "autoattack") return n * autoAttackCostPerImage(s.version, s.members);
  const main = s.steps * s.restarts;
  if (!s.maskingCheck) return n * main;
  return n * (main + fewerSteps(s.steps) * s.restarts + main + MASKING_SQUARE_QUERIES);
}

/**
 * Robust accuracy under untargeted L-inf PGD or the ensemble, with the true labels.
 *
 * @throws {ShapeMismatchError} labels and images differ in count.
 * @throws {UnprocessableError} a label outside 0..K−1, a bad attack setting, APGD-T on fewer than
 *   4 classes.
 */
export async function robustAccuracy(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  opts: RobustOptions = {},
): Promise<RobustReport> {
  checkLabels(images, labels, clf.numClasses);
  const s = settings(opts);
  const [n, h, w, c] = images.shape;
  const per = h * w * c;
  const ok = new Uint8Array(n);
  const members = new Map<Member, MemberReport>();
  let clean = 0;
  // PGD's masking figures: robust counts at fewer steps and at 2·eps, Square-only breaks.
  let fewer = 0, wider = 0, squareOnly = 0;
  for (let i = 0, b = 0; i < n; i += s.batchSize, b++) {
    await yieldPoint(opts.signal);
    const m = Math.min(s.batchSize, n - i);
    const x = tf.tensor4d(images.data.subarray(i * per, (i + m) * per), [m, h, w, c]);
    const y = tf.tensor1d(labels.subarray(i, i + m), "int32");
    try {
      const seed = deriveSeed(s.seed, b);
      if (s.attack === "autoattack") {
        const r = await autoAttack(clf, x, y, {
          eps: s.eps,
          version: s.version,
          members: s.members,
          seed,
          signal: opts.signal,
        });
        r.adversarial.dispose();
        addOutcomes(members, r.members);
        for (let j = 0; j < m; j++) {
          ok[i + j] = r.success[j] ? 0 : 1;
          if (r.brokenBy[j] !== "clean") clean++;
        }
        continue;
      }
      /** PGD on the batch; `stream` −1 is the batch's own seed, others derive from it. */
      const run = async (eps: number, steps: number, stream: number) => {
        const r = await pgd(clf, x, y, {
          eps,
          steps,
          // The stride scales with eps and with fewer steps, so every run can cross its ball.
          stepSize: Math.min(eps, (s.stepSize * (eps / s.eps) * s.steps) / steps),
          restarts: s.restarts,
          randomStart: true,
          earlyStop: true,
          seed: stream < 0 ? seed : deriveSeed(seed, stream),
          signal: opts.signal,
        });
        r.adversarial.dispose();
        return r.success;
      };
      // The main attack keeps the batch's seed (the figure is what it was before the check).
      const success = await run(s.eps, s.steps, -1);
      for (let j = 0; j < m; j++) ok[i + j] = success[j] ? 0 : 1;
      if (!s.maskingCheck) continue;
      const few = await run(s.eps, fewerSteps(s.steps), 1);
      const wide = await run(Math.min(1, 2 * s.eps), s.steps, 2);
      for (let j = 0; j < m; j++) {
        fewer += few[j] ? 0 : 1;
        wider += wide[j] ? 0 : 1;
      }
      const left = [...success.keys()].filter((j) => !success[j]);
      if (left.length === 0) continue;
      const ids = tf.tensor1d(left, "int32");
      const xs = tf.gather(x, ids) as tf.Tensor4D;
      const ys = tf.gather(y, ids) as tf.Tensor1D;
      try {
        const r = await square(clf, xs, ys, {
          eps: s.eps,
          queries: MASKING_SQUARE_QUERIES,
          seed: deriveSeed(seed, 3),
          signal: opts.signal,
        });
        r.adversarial.dispose();
        squareOnly += r.success.filter(Boolean).length;
      } finally {
        tf.dispose([ids, xs, ys]);
      }
    } finally {
      tf.dispose([x, y]);
    }
  }
  const f = figures(ok, labels, clf.numClasses);
  const base = { robust_accuracy: f.accuracy, robust: f.correct, total: n, per_class: f.per_class };
  if (s.attack === "autoattack") {
    const ens = ensembleReport([...members.values()], clean, n);
    return {
      ...base,
      attack: {
        name: "autoattack",
        norm: "linf",
        eps: s.eps,
        version: s.version,
        members: [...s.members],
      },
      members: ens.members,
      worst_case_robust_accuracy: n ? ens.worst_case_robust_accuracy : null,
      gradient_masking: ens.gradient_masking,
    };
  }
  const rate = (k: number) => (n ? k / n : null);
  const point = (steps: number, eps: number, robust: number) => ({
    steps,
    eps,
    robust_accuracy: robust / n,
  });
  const checked = s.maskingCheck && n > 0;
  return {
    ...base,
    attack: {
      name: "pgd",
      norm: "linf",
      eps: s.eps,
      steps: s.steps,
      step_size: s.stepSize,
      restarts: s.restarts,
    },
    worst_case_robust_accuracy: rate(f.correct - squareOnly),
    gradient_masking: checkMasking({
      n,
      white_box_robust_accuracy: rate(f.correct),
      worst_case_robust_accuracy: rate(f.correct - squareOnly),
      black_box_only: checked ? squareOnly : null,
      black_box_only_share: checked ? squareOnly / n : null,
      steps_sweep: checked
        ? [point(fewerSteps(s.steps), s.eps, fewer), point(s.steps, s.eps, f.correct)]
        : null,
      eps_sweep: checked
        ? [point(s.steps, s.eps, f.correct), point(s.steps, Math.min(1, 2 * s.eps), wider)]
        : null,
    }),
  };
}

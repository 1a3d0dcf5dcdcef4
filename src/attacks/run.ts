/**
 * A whole attack request: checks that the images, labels, targets and params fit together and
 * that the cost is within budget (all before any tensor work), attacks `batch_size` images at a
 * time, and reports per image and overall.
 */
import * as tf from "@tensorflow/tfjs";
import { CostExceededError, ensure, ShapeMismatchError, UnprocessableError } from "../errors.ts";
import { checkBatchFits, type ImageBatch } from "../io/images.ts";
import { checkLabels } from "../io/label_checks.ts";
import { resolveBatchSize } from "../model/batch_defaults.ts";
import type { Classifier } from "../model/classifier.ts";
import { apgd } from "./apgd.ts";
import {
  autoAttack,
  type AutoAttackResult,
  ensembleMinClasses,
  type Member,
  MEMBERS,
} from "./autoattack.ts";
import {
  addOutcomes,
  type EnsembleReport,
  ensembleReport,
  type MemberReport,
} from "./ensemble_report.ts";
import { minClasses } from "./losses.ts";
import { fgsm } from "./fgsm.ts";
import { mifgsm } from "./mifgsm.ts";
import { type AttackParams, costUnits, estimateCost } from "./options.ts";
import { pgd } from "./pgd.ts";
import { deriveSeed } from "../random/rng.ts";
import { square } from "./square.ts";
import type { AttackResult, AttackTarget } from "./types.ts";
import { activeBackend, type BackendName } from "../tensor/backend.ts";
import { yieldPoint } from "../tensor/yield_point.ts";

export interface RunAttackOptions {
  /** Checked between batches (and by the attacks between steps); its reason is rethrown. */
  signal?: AbortSignal;
  /** Most image passes ({@link estimateCost}: gradient evaluations or forward passes) the request may need. */
  maxCost: number;
  /**
   * The backend the engine runs on, which picks the default `batch_size` (see
   * `src/model/batch_defaults.ts`); default the one tfjs runs on now.
   */
  backend?: BackendName;
}

export interface ImageReport {
  index: number;
  label: number;
  /** Present for targeted attacks. */
  target?: number;
  clean_pred: number;
  adv_pred: number;
  /** Untargeted: `adv_pred ≠ label`; targeted: `adv_pred = target`. */
  success: boolean;
  /** `max |adv − x|` over pixels. */
  linf: number;
  /** `‖adv − x‖₂` over the image. */
  l2: number;
  /** The ensemble only: the member that broke the image first, `"clean"` if it was never right. */
  broken_by?: Member | "clean" | null;
}

export interface AttackReport {
  /** The params the attack ran with, `batch_size` resolved. */
  params: AttackParams & { batch_size: number };
  n: number;
  /** Fraction of images where the attack succeeded. */
  success_rate: number;
  /** Fraction of clean images predicted as their label. */
  clean_accuracy: number;
  /** Fraction of adversarial images still predicted as their label. */
  robust_accuracy: number;
  /** Gradient evaluations made (at most {@link estimateCost}; early stopping saves some). */
  queries: number;
  time_ms: number;
  images: ImageReport[];
  /** `autoattack` only. */
  ensemble?: EnsembleReport;
}

export interface RunAttackResult {
  /** NHWC float32 in [0,1], the input's shape. */
  adversarial: Float32Array;
  shape: [number, number, number, number];
  report: AttackReport;
}

/**
 * Attacks every image of `images` (NHWC float32 in [0,1]) with true `labels`.
 *
 * `params.preprocess` is the caller's business: `clf` must already apply it (attacks perturb
 * pixels). Random starts of batch b are seeded with `deriveSeed(seed, b)`, so output depends on
 * `seed` and `batch_size` only. An absent `batch_size` is resolved from `opts.backend` and the
 * model's activation budget (128 on wasm/cpu; up to 1024 on webgpu, see
 * `src/model/batch_defaults.ts`); the report's `params` carry the value used.
 *
 * @throws {ShapeMismatchError} image shape ≠ the model's input, label or target count ≠ image
 *   count.
 * @throws {UnprocessableError} no images, a label or target that is not a class of the model, a
 *   target equal to its image's label, a pixel outside [0,1].
 * @throws {CostExceededError} `estimateCost(params, N)` > `maxCost`.
 * @throws the signal's reason when aborted.
 */
export async function runAttack(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  params: AttackParams,
  opts: RunAttackOptions,
): Promise<RunAttackResult> {
  const t0 = performance.now();
  const targets = validate(clf, images, labels, params, opts.maxCost);
  // Square queries forward passes only; every other attack takes input gradients.
  const batchSize = resolveBatchSize(
    "attack",
    params.batch_size,
    opts.backend ?? activeBackend(),
    clf,
    params.attack !== "square",
  );
  const [n, h, w, c] = images.shape;
  const per = h * w * c;
  const adversarial = new Float32Array(images.data.length);
  const cleanPred = new Int32Array(n);
  const advPred = new Int32Array(n);
  const success: boolean[] = [];
  const brokenBy: ImageReport["broken_by"][] = [];
  const members = new Map<Member, MemberReport>();
  let queries = 0;

  for (let start = 0, b = 0; start < n; start += batchSize, b++) {
    await yieldPoint(opts.signal);
    const m = Math.min(batchSize, n - start);
    const x = tf.tensor4d(images.data.subarray(start * per, (start + m) * per), [m, h, w, c]);
    const y = tf.tensor1d(labels.subarray(start, start + m), "int32");
    try {
      const clean = tf.tidy(() => tf.cast(tf.argMax(clf.logits(x, false), 1), "int32"));
      try {
        cleanPred.set(await clean.data() as Int32Array, start);
      } finally {
        clean.dispose();
      }
      const target = targets === undefined || typeof targets === "number"
        ? targets
        : targets.subarray(start, start + m);
      const res = await dispatch(
        clf,
        x,
        y,
        params,
        target,
        deriveSeed(params.seed, b),
        opts.signal,
      );
      try {
        adversarial.set(await res.adversarial.data() as Float32Array, start * per);
      } finally {
        res.adversarial.dispose();
      }
      advPred.set(res.predictions, start);
      success.push(...res.success);
      queries += res.queries;
      if ("brokenBy" in res) {
        brokenBy.push(...res.brokenBy);
        addOutcomes(members, res.members);
      }
    } finally {
      tf.dispose([x, y]);
    }
  }

  const report: AttackReport = {
    params: { ...params, batch_size: batchSize },
    n,
    success_rate: 0,
    clean_accuracy: 0,
    robust_accuracy: 0,
    queries,
    time_ms: 0,
    images: [],
  };
  let ok = 0, clean = 0, robust = 0;
  for (let i = 0; i < n; i++) {
    let linf = 0, sq = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const d = Math.abs(adversarial[j] - images.data[j]);
      if (d > linf) linf = d;
      sq += d * d;
    }
    ok += success[i] ? 1 : 0;
    clean += cleanPred[i] === labels[i] ? 1 : 0;
    robust += advPred[i] === labels[i] ? 1 : 0;
    report.images.push({
      index: i,
      label: labels[i],
      ...(targets === undefined
        ? {}
        : { target: typeof targets === "number" ? targets : targets[i] }),
      clean_pred: cleanPred[i],
      adv_pred: advPred[i],
      success: success[i],
      linf,
      l2: Math.sqrt(sq),
      ...(brokenBy.length ? { broken_by: brokenBy[i] } : {}),
    });
  }
  if (members.size) report.ensemble = ensembleReport([...members.values()], clean, n);
  report.success_rate = ok / n;
  report.clean_accuracy = clean / n;
  report.robust_accuracy = robust / n;
  report.time_ms = Math.round(performance.now() - t0);
  return { adversarial, shape: [n, h, w, c], report };
}

/** The cross-field rules; returns the targets as one class or an int32 array per image. */
function validate(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  params: AttackParams,
  maxCost: number,
): number | Int32Array | undefined {
  const n = images.shape[0];
  checkBatchFits(images, clf.inputShape);
  ensure(n >= 1, () => new UnprocessableError("at least one image is required"));
  const cost = estimateCost(params, n);
  ensure(cost <= maxCost, () => {
    const { units, cut } = costUnits(params);
    return new CostExceededError(
      `${params.attack} needs up to ${cost} ${units}; the limit is ${maxCost}: send fewer ${cut}`,
      { cost, maxCost },
    );
  });
  const k = clf.numClasses;
  checkLabels(images, labels, k);
  const target = "target" in params ? params.target : undefined;
  const need = params.attack === "autoattack"
    ? ensembleMinClasses(params.members ?? MEMBERS)
    : params.attack === "square"
    ? 2
    : minClasses(params.loss, target !== undefined);
  ensure(
    k >= need,
    () =>
      new UnprocessableError(
        `${params.attack}${"loss" in params ? ` with loss ${params.loss}` : ""} needs a model ` +
          `with at least ${need} classes; this one has ${k}` +
          (params.attack === "autoattack" ? ' (leave "apgd-t" out of members)' : ""),
      ),
  );
  const targets = target === undefined || typeof target === "number"
    ? target
    : Int32Array.from(target);
  if (targets !== undefined) {
    ensure(
      typeof targets === "number" || targets.length === n,
      () =>
        new ShapeMismatchError(
          `target has ${(targets as Int32Array).length} entries for ${n} images; give one class ` +
            `or one per image`,
        ),
    );
    for (let i = 0; i < n; i++) {
      const t = typeof targets === "number" ? targets : targets[i];
      ensure(
        t < k,
        () =>
          new UnprocessableError(
            `target ${t} of image ${i} is not a class of the model; allowed: 0..${k - 1}`,
            { index: i },
          ),
      );
      ensure(
        t !== labels[i],
        () =>
          new UnprocessableError(
            `target ${t} of image ${i} equals its label: a targeted attack needs a target ` +
              `different from the true class`,
            { index: i },
          ),
      );
    }
  }
  return targets;
}

function dispatch(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  p: AttackParams,
  target: AttackTarget | undefined,
  seed: number,
  signal: AbortSignal | undefined,
): Promise<AttackResult | AutoAttackResult> {
  switch (p.attack) {
    case "square":
      return square(clf, x, y, {
        eps: p.eps,
        norm: p.norm,
        queries: p.queries,
        pInit: p.p_init,
        restarts: p.restarts,
        target,
        seed,
        signal,
      });
    case "autoattack":
      return autoAttack(clf, x, y, {
        eps: p.eps,
        norm: p.norm,
        version: p.version,
        members: p.members,
        seed,
        signal,
      });
  }
  const shared = { eps: p.eps, loss: p.loss, target, signal };
  switch (p.attack) {
    case "fgsm":
      return fgsm(clf, x, y, shared);
    case "pgd":
      return pgd(clf, x, y, {
        ...shared,
        norm: p.norm,
        steps: p.steps,
        stepSize: p.step_size,
        restarts: p.restarts,
        randomStart: p.random_start,
        earlyStop: p.early_stop,
        seed,
      });
    case "mifgsm":
      return mifgsm(clf, x, y, {
        ...shared,
        steps: p.steps,
        stepSize: p.step_size,
        momentum: p.momentum,
        earlyStop: p.early_stop,
      });
    case "apgd":
      return apgd(clf, x, y, {
        ...shared,
        norm: p.norm,
        steps: p.steps,
        stepSize: p.step_size,
        restarts: p.restarts,
        randomStart: p.random_start,
        momentum: p.momentum,
        rho: p.rho,
        earlyStop: p.early_stop,
        seed,
      });
  }
}

/**
 * The evidence phase of a purification round: before any training, measure per class how the
 * infected model itself betrays a backdoor target (`target_evidence.ts` says what each signal
 * means and how suspects are decided). Its work is cut into units the round runs one at a time:
 *
 * 1. landing batches: untargeted PGD on clean-looking images (the infected model agrees with
 *    their label), `landing_per_class` per class, counting where they land;
 * 2. one unit per class: `patch_steps` Adam steps of a mask-and-pattern trigger towards it, its
 *    area capped at `patch_budget`;
 * 3. one unit per class: `additive_steps` signed steps of a universal perturbation towards it.
 *    Each search's success is then measured on 32 clean-looking images of every other class,
 *    and the median over those source classes is the signal;
 * 4. one untargeted trigger search, then where its stamp sends each class.
 *
 * Every draw is seeded from `(seed, stream, class, position)`, and each unit's results are written
 * to the state before the next starts, so a run split across rounds measures exactly what one
 * long round does.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { pgd } from "../attacks/pgd.ts";
import type { Classifier } from "../model/classifier.ts";
import { opSeed, seededDraw } from "../random/rng.ts";
import { STREAM } from "./streams.ts";
import type { Schedule } from "./schedule.ts";
import { rowArgmax } from "./selection.ts";
import type { EvidenceArrays, EvidenceMeasures, LiveEvidence } from "./state.ts";
import { stampSize } from "./state.ts";
import { decideSuspects, labelExcess, median, type SuspectDecision } from "./target_evidence.ts";
import {
  applyMask,
  budgetedLogits,
  disposeTriggerVars,
  initialTriggerArrays,
  reconstructionStep,
  stamp,
  triggerVars,
} from "./trigger_reconstruction.ts";
import { addPerturbation, perturbationStep } from "./universal_perturbation.ts";

type EvidenceOptions = Schedule["suspect"]["evidence"];
type EvidenceState = EvidenceMeasures;

/** One unit of the phase. */
export type EvidenceUnit =
  | { kind: "landing"; batch: number }
  | { kind: "patch"; target: number }
  | { kind: "additive"; target: number }
  | { kind: "untargeted" };

/** Images used to measure the untargeted trigger's destinations, per class. */
const FLIP_IMAGES_PER_CLASS = 32;
/** A search must reach its class this often for its trigger to be stamped in training. */
const MIN_STAMP_SUCCESS = 0.5;
/** The patch budget never goes below a 2×2 patch's area. */
const MIN_PATCH_PIXELS = 4;
/** Steps whose batch success is averaged into a search's success. */
const SUCCESS_WINDOW = 5;

/** Everything the phase needs from the round, read-only. */
export interface EvidenceContext {
  clf: Classifier;
  labels: Int32Array;
  /** The infected model's logits on the extra set, `[N, K]` row-major. */
  infected: Float32Array;
  dims: { h: number; w: number; c: number; k: number };
  options: EvidenceOptions;
  seed: number;
  /** The extra-set images at `idx` as a new tensor (the caller's gather). */
  batch: (idx: ArrayLike<number>) => tf.Tensor4D;
  signal?: AbortSignal;
}

/** Clean-looking images: the infected model predicts their label. */
function agreeing(ctx: EvidenceContext): Uint8Array {
  const { labels, infected, dims } = ctx;
  return Uint8Array.from(labels, (y, i) => (rowArgmax(infected, i, dims.k) === y ? 1 : 0));
}

/** Up to `per` clean-looking images of each class, in a seeded order, class by class. */
function perClassSample(ctx: EvidenceContext, per: number, stream: number): Int32Array {
  const ok = agreeing(ctx);
  const n = ctx.labels.length;
  const order = seededDraw(
    Int32Array.from({ length: n }, (_, i) => i),
    ctx.seed,
    stream,
    0,
    0,
    n,
    new Map(),
  );
  const taken = new Array<number>(ctx.dims.k).fill(0);
  const byClass: number[][] = Array.from({ length: ctx.dims.k }, () => []);
  for (const i of order) {
    const y = ctx.labels[i];
    if (ok[i] && taken[y] < per) {
      taken[y]++;
      byClass[y].push(i);
    }
  }
  return Int32Array.from(byClass.flat());
}

/**
 * Image passes of the whole phase, an upper bound in the unit of `MAX_ATTACK_COST` (one forward
 * and backward pass of one image): PGD steps plus a forward pass per landing image, every search
 * step's batch, and the untargeted trigger's destination pass.
 */
export function evidenceCost(o: EvidenceOptions, k: number): number {
  const landing = k * o.landing_per_class * (o.landing_steps + 1);
  const patch = k * o.patch_steps * o.batch_size;
  const additive = k * o.additive_steps * o.batch_size;
  const untargeted = o.untargeted && o.patch_steps > 0
    ? o.patch_steps * o.batch_size + k * FLIP_IMAGES_PER_CLASS
    : 0;
  return landing + patch + additive + untargeted;
}

/** The units of the phase, in order. */
export function evidenceUnits(ctx: EvidenceContext): EvidenceUnit[] {
  const o = ctx.options;
  const units: EvidenceUnit[] = [];
  if (o.landing_per_class > 0) {
    const m = perClassSample(ctx, o.landing_per_class, STREAM.evidenceImages).length;
    for (let b = 0; b * o.batch_size < m; b++) units.push({ kind: "landing", batch: b });
  }
  const k = ctx.dims.k;
  if (o.patch_steps > 0) { for (let t = 0; t < k; t++) units.push({ kind: "patch", target: t }); }
  if (o.additive_steps > 0) {
    for (let t = 0; t < k; t++) units.push({ kind: "additive", target: t });
  }
  if (o.untargeted && o.patch_steps > 0) units.push({ kind: "untargeted" });
  return units;
}

/** A fresh evidence state, with its trigger arrays. */
export function freshEvidence(ctx: EvidenceContext): LiveEvidence {
  const { h, w, c, k } = ctx.dims;
  const nulls = () => new Array<number | null>(k).fill(null);
  const patch = new Float32Array(k * stampSize("patch", h, w, c));
  const init = initialTriggerArrays(h, w, c);
  for (let t = 0; t < k; t++) patch.set(init.maskLogits, t * stampSize("patch", h, w, c));
  return {
    landing_hits: new Array<number>(k).fill(0),
    landing_sources: new Array<number>(k).fill(0),
    patch_mask: nulls(),
    patch_success: nulls(),
    additive_success: nulls(),
    untargeted: null,
    arrays: {
      patchTriggers: patch,
      additiveDeltas: new Float32Array(k * stampSize("additive", h, w, c)),
      untargetedTrigger: null,
    },
  };
}

/** Runs unit `u` and records its result in `ev` / `arrays`. */
export async function runEvidenceUnit(
  ctx: EvidenceContext,
  u: EvidenceUnit,
  ev: EvidenceState,
  arrays: EvidenceArrays,
): Promise<void> {
  switch (u.kind) {
    case "landing":
      return await landingUnit(ctx, u.batch, ev);
    case "patch":
      return await patchUnit(ctx, u.target, ev, arrays);
    case "additive":
      return await additiveUnit(ctx, u.target, ev, arrays);
    case "untargeted":
      return await untargetedUnit(ctx, ev, arrays);
  }
}

async function landingUnit(ctx: EvidenceContext, b: number, ev: EvidenceState): Promise<void> {
  const o = ctx.options;
  const all = perClassSample(ctx, o.landing_per_class, STREAM.evidenceImages);
  const idx = all.subarray(b * o.batch_size, Math.min(all.length, (b + 1) * o.batch_size));
  const x = ctx.batch(idx);
  const y = tf.tensor1d(Int32Array.from(idx, (i) => ctx.labels[i]), "int32");
  try {
    const r = await pgd(ctx.clf, x, y, {
      eps: o.landing_eps,
      steps: o.landing_steps,
      stepSize: o.landing_eps / 4,
      randomStart: true,
      earlyStop: false,
      seed: opSeed(ctx.seed, STREAM.pgd, STREAM.evidenceImages, b),
      signal: ctx.signal,
    });
    r.adversarial.dispose();
    idx.forEach((i, j) => {
      const label = ctx.labels[i];
      ev.landing_sources[label]++;
      if (r.predictions[j] !== label) ev.landing_hits[r.predictions[j]]++;
    });
  } finally {
    tf.dispose([x, y]);
  }
}

/** Clean-looking images of classes other than `t` (all clean-looking ones when `t` is null). */
function othersPool(ctx: EvidenceContext, t: number | null): Int32Array {
  const ok = agreeing(ctx);
  const out: number[] = [];
  for (let i = 0; i < ctx.labels.length; i++) if (ok[i] && ctx.labels[i] !== t) out.push(i);
  return Int32Array.from(out);
}

/** The patch search's area cap as a share of the image: `patch_budget`, at least 4 pixels. */
export function patchBudget(o: EvidenceOptions, h: number, w: number): number {
  return Math.min(1, Math.max(o.patch_budget, MIN_PATCH_PIXELS / (h * w)));
}

/** Mean of the last {@link SUCCESS_WINDOW} values. */
function tailMean(v: number[]): number {
  const tail = v.slice(-SUCCESS_WINDOW);
  return tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
}

/** A mask-and-pattern search from a fresh trigger; returns its arrays, mask mean and success. */
async function patchSearch(
  ctx: EvidenceContext,
  t: number | null,
  stream: number,
): Promise<{ data: Float32Array; maskMean: number; success: number }> {
  const { h, w, c } = ctx.dims;
  const o = ctx.options;
  const pool = othersPool(ctx, t);
  const budget = patchBudget(o, h, w);
  const v = triggerVars(initialTriggerArrays(h, w, c), h, w, c);
  const cache = new Map<string, Int32Array>();
  const hits: number[] = [];
  let maskMean = 0;
  try {
    for (let s = 0; s < o.patch_steps; s++) {
      ctx.signal?.throwIfAborted();
      const idx = seededDraw(
        pool,
        ctx.seed,
        stream,
        t ?? -1,
        s * o.batch_size,
        o.batch_size,
        cache,
      );
      const x = ctx.batch(idx);
      const y = t === null ? tf.tensor1d(Int32Array.from(idx, (i) => ctx.labels[i]), "int32") : t;
      try {
        const r = await reconstructionStep(
          ctx.clf,
          v,
          x,
          y,
          0.1,
          o.patch_l1_weight,
          budget,
        );
        hits.push(r.success);
        maskMean = r.maskMean;
      } finally {
        tf.dispose([x, ...(typeof y === "number" ? [] : [y])]);
      }
    }
    // Stamped later as a plain trigger, so the budget's scale is folded into the logits.
    const mask = budgetedLogits((await v.maskLogits.data()) as Float32Array, budget);
    const pattern = (await v.patternLogits.data()) as Float32Array;
    const data = new Float32Array(mask.length + pattern.length);
    data.set(mask);
    data.set(pattern, mask.length);
    return { data, maskMean, success: tailMean(hits) };
  } finally {
    disposeTriggerVars(v);
  }
}

async function patchUnit(
  ctx: EvidenceContext,
  t: number,
  ev: EvidenceState,
  arrays: EvidenceArrays,
): Promise<void> {
  const r = await patchSearch(ctx, t, STREAM.evidencePatch);
  const { h, w, c } = ctx.dims;
  arrays.patchTriggers.set(r.data, t * stampSize("patch", h, w, c));
  ev.patch_mask[t] = clamp01(r.maskMean);
  ev.patch_success[t] = clamp01(
    await sourceMedianSuccess(ctx, t, (x) => {
      const m = tf.tensor3d(r.data.subarray(0, h * w), [h, w, 1]);
      const p = tf.tensor3d(r.data.subarray(h * w), [h, w, c]);
      return stamp(x, m, p);
    }),
  );
}

/**
 * How often `apply` sends clean-looking images to `t`, per source class, and the median over the
 * source classes. A backdoor trigger works from every class; a natural attractor (a blob that
 * makes sandals look like bags) only from its neighbours, which the median discounts.
 */
async function sourceMedianSuccess(
  ctx: EvidenceContext,
  t: number,
  apply: (x: tf.Tensor4D) => tf.Tensor4D,
): Promise<number> {
  const k = ctx.dims.k;
  const idx = perClassSample(ctx, FLIP_IMAGES_PER_CLASS, STREAM.evidenceUntargeted).filter((i) =>
    ctx.labels[i] !== t
  );
  if (idx.length === 0) return 0;
  const x = ctx.batch(idx);
  try {
    const pred = tf.tidy(() => tf.argMax(ctx.clf.logits(apply(x), false), 1));
    const got = await pred.data();
    pred.dispose();
    const hits = new Array<number>(k).fill(0), seen = new Array<number>(k).fill(0);
    idx.forEach((i, j) => {
      seen[ctx.labels[i]]++;
      if (got[j] === t) hits[ctx.labels[i]]++;
    });
    const shares = seen.flatMap((s, c) => (s > 0 && c !== t ? [hits[c] / s] : []));
    return shares.length ? median(shares) : 0;
  } finally {
    x.dispose();
  }
}

async function additiveUnit(
  ctx: EvidenceContext,
  t: number,
  ev: EvidenceState,
  arrays: EvidenceArrays,
): Promise<void> {
  const { h, w, c } = ctx.dims;
  const o = ctx.options;
  const pool = othersPool(ctx, t);
  // In a tidy: the variable keeps the zeros' data, the zeros tensor itself must go.
  const delta = tf.tidy(() => tf.variable(tf.zeros([h, w, c]), false));
  const cache = new Map<string, Int32Array>();
  try {
    for (let s = 0; s < o.additive_steps; s++) {
      ctx.signal?.throwIfAborted();
      const idx = seededDraw(
        pool,
        ctx.seed,
        STREAM.evidenceAdditive,
        t,
        s * o.batch_size,
        o.batch_size,
        cache,
      );
      const x = ctx.batch(idx);
      try {
        await perturbationStep(ctx.clf, delta, x, t, o.additive_eps / 8, o.additive_eps);
      } finally {
        x.dispose();
      }
    }
    arrays.additiveDeltas.set(
      (await delta.data()) as Float32Array,
      t * stampSize("additive", h, w, c),
    );
    ev.additive_success[t] = clamp01(
      await sourceMedianSuccess(ctx, t, (x) => addPerturbation(x, delta)),
    );
  } finally {
    delta.dispose();
  }
}

async function untargetedUnit(
  ctx: EvidenceContext,
  ev: EvidenceState,
  arrays: EvidenceArrays,
): Promise<void> {
  const r = await patchSearch(ctx, null, STREAM.evidenceUntargeted);
  arrays.untargetedTrigger = r.data;
  const { h, w, c, k } = ctx.dims;
  const idx = perClassSample(ctx, FLIP_IMAGES_PER_CLASS, STREAM.evidenceUntargeted);
  const flips = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const x = ctx.batch(idx);
  try {
    const pred = tf.tidy(() => {
      const m = tf.tensor3d(r.data.subarray(0, h * w), [h, w, 1]);
      const p = tf.tensor3d(r.data.subarray(h * w), [h, w, c]);
      return tf.argMax(ctx.clf.logits(stamp(x, m, p), false), 1);
    });
    const got = await pred.data();
    pred.dispose();
    idx.forEach((i, j) => flips[ctx.labels[i]][got[j]]++);
  } finally {
    x.dispose();
  }
  ev.untargeted = { mask: clamp01(r.maskMean), success: clamp01(r.success), flips };
}

/** The suspects the finished phase points to, from its state and the labels. */
export function evidenceDecision(
  ctx: EvidenceContext,
  ev: EvidenceState,
  minExcess: number,
): SuspectDecision {
  const o = ctx.options;
  const k = ctx.dims.k;
  const { counts, excess } = labelExcess(ctx.labels, k);
  const total = ev.landing_sources.reduce((a, b) => a + b, 0);
  const landing = o.landing_per_class > 0 && total > 0
    ? ev.landing_hits.map((hits, t) => hits / Math.max(1, total - ev.landing_sources[t]))
    : null;
  const measured = (v: (number | null)[]) => (v.every((x) => x !== null) ? v as number[] : null);
  return decideSuspects({
    counts,
    labelExcess: excess,
    landing,
    patchMask: measured(ev.patch_mask),
    patchSuccess: measured(ev.patch_success),
    additiveSuccess: measured(ev.additive_success),
    untargeted: ev.untargeted,
  }, {
    patch: o.patch_threshold,
    additive: o.additive_threshold,
    landing: o.landing_threshold,
    label_excess: minExcess,
    max_suspects: o.max_suspects,
  });
}

/**
 * The triggers the train stages stamp with true labels: every suspect's patch trigger and
 * additive perturbation that reached it at least half the time (a reconstruct stage later
 * refines the primary's patch, which then replaces it), and the untargeted trigger when
 * all-to-all is suspected.
 */
export function evidenceStamps(
  d: SuspectDecision,
  ev: EvidenceState,
  arrays: EvidenceArrays,
  dims: EvidenceContext["dims"],
): { kinds: { kind: "patch" | "additive"; target: number | null }[]; data: Float32Array } | null {
  const { h, w, c } = dims;
  const kinds: { kind: "patch" | "additive"; target: number | null }[] = [];
  const parts: Float32Array[] = [];
  const ps = stampSize("patch", h, w, c), as = stampSize("additive", h, w, c);
  if (d.all_to_all && arrays.untargetedTrigger) {
    kinds.push({ kind: "patch", target: null });
    parts.push(arrays.untargetedTrigger);
  }
  // Only searches that worked: a stamp that does not trigger anything only dilutes the others.
  for (const t of d.all_to_all ? [] : d.classes) {
    if ((ev.patch_success[t] ?? 0) >= MIN_STAMP_SUCCESS) {
      kinds.push({ kind: "patch", target: t });
      parts.push(arrays.patchTriggers.subarray(t * ps, (t + 1) * ps));
    }
    if ((ev.additive_success[t] ?? 0) >= MIN_STAMP_SUCCESS) {
      kinds.push({ kind: "additive", target: t });
      parts.push(arrays.additiveDeltas.subarray(t * as, (t + 1) * as));
    }
  }
  if (kinds.length === 0) return null;
  const data = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return { kinds, data };
}

function clamp01(v: number): number {
  return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
}

/** Stamps each image of `x` with one of `stamps` (image j: stamp `(j + offset) mod S`). */
export function stampEach(
  x: tf.Tensor4D,
  stamps: { mask: tf.Tensor3D; pattern: tf.Tensor3D; delta: tf.Tensor3D }[],
  offset: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const n = x.shape[0];
    const which = tf.tensor1d(
      Int32Array.from({ length: n }, (_, j) => (j + offset) % stamps.length),
      "int32",
    );
    const m = tf.gather(tf.stack(stamps.map((s) => s.mask)), which) as tf.Tensor4D;
    const p = tf.gather(tf.stack(stamps.map((s) => s.pattern)), which) as tf.Tensor4D;
    const d = tf.gather(tf.stack(stamps.map((s) => s.delta)), which) as tf.Tensor4D;
    return addPerturbation(applyMask(x, m, p), d);
  });
}

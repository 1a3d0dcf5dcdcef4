/**
 * One bounded round of Progressive Unified Defense (Hua et al., arXiv 2405.17929) as the schedule
 * of `schedule.ts` lays it out: the round picks up the state where the last one stopped, does at
 * most `maxSteps` units of work within `maxMs`, mutates the classifier's weights in place (the
 * caller saves them with `clf.save()`) and returns the next state and a report.
 *
 * Units of work: one forward batch of the infected model's logits (first rounds), one Adam step of
 * trigger reconstruction, one SGD step of a train stage (PGD examples included), one forward
 * batch of re-scoring. Phase changes (suspect class, first clean set, re-selection, stage set-up)
 * happen between units and cost no unit.
 *
 * Determinism: every shuffle and random start is drawn from the seed and the cursor
 * (`streams.ts`, `../random/rng.ts`), the SGD momentum, teacher and anchor weights and the
 * trigger's Adam moments travel in the state bit for bit, and layers run in inference mode by
 * default (no dropout draws), so on one backend a run split into any number of rounds ends with
 * the same weights as one long round.
 *
 * Time: before each unit the round checks the signal and stops if the unit's measured duration
 * (carried in the state) would take it past `maxMs`. The first unit of a round always runs, so
 * every round makes progress; a budget shorter than one unit is therefore exceeded by that unit.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { pgd } from "../attacks/pgd.ts";
import { UnprocessableError, ValidationError } from "../errors.ts";
import { checkBatchFits, type ImageBatch } from "../io/images.ts";
import { checkLabels } from "../io/label_checks.ts";
import type { Classifier } from "../model/classifier.ts";
import { evaluate, type EvaluateInput, type EvaluateReport } from "../metrics/evaluate.ts";
import { opSeed, seededDraw } from "../random/rng.ts";
import { yieldPoint } from "../tensor/yield_point.ts";
import { canonicalJson } from "./codec.ts";
import { round4, type RoundEvent, roundOrNull, type StageEndEvent } from "./events.ts";
import {
  type EvidenceContext,
  evidenceDecision,
  evidenceStamps,
  type EvidenceUnit,
  evidenceUnits,
  freshEvidence,
  runEvidenceUnit,
  stampEach,
} from "./evidence_phase.ts";
import { resolveSchedule, type RoundParams } from "./params.ts";
import { progressShare, remainingUnits } from "./progress.ts";
import { rescore } from "./rescore.ts";
import {
  isMultiProbe,
  type ReconstructStage,
  type Schedule,
  type TrainStage,
  trainStageSteps,
} from "./schedule.ts";
import { initialMembership, rowArgmax, suspectClass } from "./selection.ts";
import { MomentumSgd } from "./sgd.ts";
import {
  CLEAN,
  encodeState,
  FLAGGED,
  freshState,
  MAX_HISTORY,
  openState,
  type PurifyState,
  type RoundReportEntry,
  type RoundState,
  scoreUnits,
  sealState,
} from "./state.ts";
import { stampData, Stamps } from "./stamps.ts";
import { STREAM } from "./streams.ts";
import { median } from "./target_evidence.ts";
import { MeanTeacher } from "./teacher.ts";
import { LOSS_TERMS, type LossTerm, type StepBatch, trainStep } from "./train_step.ts";
import {
  disposeTriggerVars,
  initialTriggerArrays,
  reconstructionStep,
  triggerArrays,
  type TriggerVars,
  triggerVars,
} from "./trigger_reconstruction.ts";
import {
  datasetFingerprint,
  flatWeights,
  modelFingerprint,
  paramCount,
  trainableVariables,
  unflatten,
} from "./weights.ts";

export interface RoundContext {
  /** Most units of work this round (the service's MAX_ROUND_STEPS). */
  maxSteps: number;
  /** Time budget of this round's work in ms (the service's MAX_ROUND_MS). */
  maxMs: number;
  /** Checked between units; an aborted signal stops the round and rethrows its reason. */
  signal?: AbortSignal;
  /**
   * Diagnostics: evaluated after every stage (and before the first), reported as `evaluation`
   * events. `poisoned` (ground truth of the extra set, 1 = poisoned) adds detection figures to
   * every re-selection event. Evaluation time is not charged to the round's budget.
   */
  evaluate?: EvaluateInput & { poisoned?: Uint8Array; batchSize?: number };
}

export interface RoundReport extends Omit<RoundReportEntry, "events"> {
  /** What happened this round, in order (at most 64). */
  events: RoundEvent[];
  done: boolean;
  /** The primary suspect (the class a reconstruct stage refines), or null. */
  suspect_class: number | null;
  /** Every suspected target class (all of them when all-to-all is suspected). */
  suspect_classes: number[];
  all_to_all: boolean;
  /** Per-class evidence from the infected model, once the evidence phase has finished. */
  evidence: NonNullable<PurifyState["suspect"]>["per_class"];
  /** Indices of every image flagged as poisoned so far. */
  flagged_indices: number[];
  /** ms per unit of work, by kind, as measured (the last of each kind). */
  timings: Record<string, number>;
}

export interface RoundResult {
  /** The sealed state to hand the next round. */
  state: PurifyState;
  /**
   * The same state as the round left it, decoded (scores, membership and the other arrays as
   * typed arrays), for in-process callers that would otherwise decode `state` again.
   */
  live: RoundState;
  report: RoundReport;
  done: boolean;
}

/** Loss terms of train steps, plus the trigger reconstruction's objective. */
type ReportedLoss = LossTerm | "reconstruct";

/**
 * Runs one round. `state` is the previous round's state (undefined for the first round);
 * `params` are read for the schedule and seed in the first round and must agree with the state
 * afterwards.
 *
 * @throws {ShapeMismatchError} images that do not fit the model, or a label count other than N.
 * @throws {UnprocessableError} labels outside the model's classes, a state from another dataset
 *   or model, params that contradict the state, no usable first clean set.
 * @throws {ValidationError} a malformed or edited state.
 * @throws the signal's reason when aborted. After any error the classifier's weights may be
 *   half-way through the round: discard it rather than save it.
 */
export async function runRound(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  params: RoundParams,
  state: unknown | undefined,
  ctx: RoundContext,
): Promise<RoundResult> {
  checkBatchFits(images, clf.inputShape);
  checkLabels(images, labels, clf.numClasses);
  const start = performance.now();
  const [n, height, width, channels] = images.shape;
  const vars = trainableVariables(clf);
  const dims = { n, height, width, channels, numClasses: clf.numClasses, params: paramCount(clf) };
  const [dsFp, modelFp] = await Promise.all([
    datasetFingerprint(images, labels),
    modelFingerprint(clf),
  ]);
  let st: RoundState;
  if (state === undefined) {
    st = freshState(resolveSchedule(params.schedule), params.seed ?? 0, dims, {
      dataset: dsFp,
      model: modelFp,
    });
  } else {
    st = await openState(state, {
      ...dims,
      datasetFingerprint: dsFp,
      modelFingerprint: modelFp,
    });
    if (
      params.schedule !== undefined &&
      canonicalJson(resolveSchedule(params.schedule)) !== canonicalJson(st.schedule)
    ) {
      throw new UnprocessableError(
        "params.schedule differs from the schedule this purification started with; leave it " +
          "out after the first round (the state carries it)",
      );
    }
    if (params.seed !== undefined && params.seed !== st.seed) {
      throw new UnprocessableError(
        `params.seed is ${params.seed} but this purification started with seed ${st.seed}; ` +
          "leave it out after the first round",
      );
    }
  }
  const work = new RoundWork(clf, vars, images, labels, st, ctx);
  try {
    const maxSteps = Math.min(ctx.maxSteps, params.max_steps ?? Infinity);
    const maxMs = Math.min(ctx.maxMs, params.max_ms ?? Infinity);
    await work.run(maxSteps, maxMs, start);
    return await work.finish(start);
  } finally {
    work.dispose();
  }
}

/**
 * The mutable working set of one round: the state (one view, arrays decoded) and the tensors made
 * from it (images, SGD momentum, trigger, teacher and anchor weights, stamps).
 */
class RoundWork {
  readonly #k: number;
  readonly #n: number;
  readonly #schedule: Schedule;
  #x: tf.Tensor4D | undefined;
  #sgd: MomentumSgd | undefined;
  #trigger: TriggerVars | undefined;
  #teacher: MeanTeacher | undefined;
  #reference: tf.Tensor[] | undefined;
  /** The non-trainable weights (batch-norm statistics) a reverting stage puts back, train mode. */
  #referenceFixed: tf.Tensor[] | undefined;
  #cleanCache: Int32Array | undefined;
  #permCache = new Map<string, Int32Array>();
  #units = 0;
  #evalMs = 0;
  #lossSums: Partial<Record<ReportedLoss, number>> = {};
  #lossCounts: Partial<Record<ReportedLoss, number>> = {};
  #events: RoundEvent[] = [];
  #evidenceUnits: EvidenceUnit[] | undefined;
  readonly #stamps = new Stamps();

  constructor(
    readonly clf: Classifier,
    readonly vars: tf.Variable[],
    readonly images: ImageBatch,
    readonly labels: Int32Array,
    readonly st: RoundState,
    readonly ctx: RoundContext,
  ) {
    this.#k = clf.numClasses;
    this.#n = labels.length;
    this.#schedule = st.schedule;
    if (st.trigger) {
      const { height: h, width: w, channels: c } = st.dataset;
      this.#trigger = triggerVars(st.trigger.arrays, h, w, c);
    }
    if (st.teacher) this.#teacher = MeanTeacher.fromFlat(vars, st.teacher);
    if (st.reference) this.#reference = unflatten(vars, st.reference);
    if (st.reference_fixed) {
      const fixed = this.#fixedVars;
      const size = fixed.reduce((n, v) => n + v.size, 0);
      if (st.reference_fixed.length !== size) {
        throw new ValidationError(
          `state field 'reference_fixed' holds ${st.reference_fixed.length} values; the model ` +
            `has ${size} non-trainable weights`,
        );
      }
      this.#referenceFixed = unflatten(fixed, st.reference_fixed);
    }
  }

  /** The model's non-trainable weights: batch norm's moving statistics, which training moves. */
  get #fixedVars(): tf.Variable[] {
    return this.clf.model.nonTrainableWeights.map((w) => w.read() as tf.Variable);
  }

  get #training(): boolean {
    return this.#schedule.train_mode === "train";
  }

  /** All extra-set images as one tensor, made on first use. */
  get #xAll(): tf.Tensor4D {
    // kept: the first use may come from inside a tidy, which must not free it
    this.#x ??= tf.keep(tf.tensor4d(this.images.data, this.images.shape));
    return this.#x;
  }

  #batch(idx: ArrayLike<number>): tf.Tensor4D {
    return tf.tidy(() => tf.gather(this.#xAll, tf.tensor1d(Int32Array.from(idx), "int32")));
  }

  #labelsOf(idx: ArrayLike<number>, source: Int32Array = this.labels): tf.Tensor1D {
    return tf.tensor1d(Int32Array.from(idx, (i) => source[i]), "int32");
  }

  /** The training pool: the clean set, or while a multi-rate probe runs, the one it started from. */
  #clean(): Int32Array {
    if (this.#cleanCache === undefined) {
      const m = this.st.probe?.base_membership ?? this.st.membership;
      const out: number[] = [];
      for (let i = 0; i < this.#n; i++) if (m[i] === CLEAN) out.push(i);
      this.#cleanCache = Int32Array.from(out);
    }
    return this.#cleanCache;
  }

  #flagged(): Int32Array {
    const out: number[] = [];
    for (let i = 0; i < this.#n; i++) if (this.st.membership[i] === FLAGGED) out.push(i);
    return Int32Array.from(out);
  }

  /**
   * Flagged images whose label may be wrong, the ones unlearning pushes off their label. A
   * flagged image of a suspected class whose count does not stand out carries its true label
   * (a clean-label attack poisons the target's own images): unlearning it would teach the model
   * that the target's images are not the target — measured on SIG, it took T-shirt accuracy
   * from 48.5% to 26% — so it only stays out of the clean set, and the stamped triggers remove
   * the backdoor. An all-to-all suspicion relabels every class, so all its flags are unlearned.
   */
  #unlearnable(): Int32Array {
    const s = this.st.suspect;
    const flagged = this.#flagged();
    if (!s || s.all_to_all || s.classes.length === 0) return flagged;
    // The counts the suspects were chosen from travel in the state: no pass over the labels.
    const med = Math.max(median(s.counts), 1);
    const min = this.#schedule.suspect.min_excess;
    const keep = (c: number) => !(s.classes.includes(c) && (s.counts[c] - med) / med < min);
    return flagged.filter((i) => keep(this.labels[i]));
  }

  /** Indices `[from, from + count)` of the endless sequence of seeded shuffles of `pool`. */
  #draw(pool: Int32Array, stream: number, stage: number, from: number, count: number): Int32Array {
    return seededDraw(pool, this.st.seed, stream, stage, from, count, this.#permCache);
  }

  #stageLabel(): string {
    const c = this.st.cursor;
    return c.phase === "init" || c.phase === "done" || c.phase === "evidence"
      ? c.phase
      : this.#schedule.stages[c.stage].name;
  }

  #unitKey(): string {
    const c = this.st.cursor;
    if (c.phase === "evidence") {
      const units = this.#evidenceUnits ??= evidenceUnits(this.#evidenceCtx());
      return `evidence:${units[c.step]?.kind}`;
    }
    return c.phase === "stage" ? `stage${c.stage}` : c.phase;
  }

  async run(maxSteps: number, maxMs: number, start: number): Promise<void> {
    if (this.st.rounds === 0 && this.st.cursor.phase === "init" && this.st.cursor.step === 0) {
      await this.#evaluate("before");
    }
    while (this.st.cursor.phase !== "done") {
      await yieldPoint(this.ctx.signal);
      if (this.#units >= maxSteps) break;
      const key = this.#unitKey();
      const elapsed = performance.now() - start - this.#evalMs;
      const estimate = this.st.timing[key] ?? 0;
      if (this.#units > 0 && elapsed + estimate > maxMs) break;
      const t0 = performance.now();
      const evalBefore = this.#evalMs;
      const label = this.#stageLabel();
      await this.#unit();
      const ms = Math.round(performance.now() - t0 - (this.#evalMs - evalBefore));
      this.st.timing[key] = ms;
      // Work time per stage (scoring passes included), summed over rounds, for reports.
      this.st.timing[`total:${label}`] = (this.st.timing[`total:${label}`] ?? 0) + ms;
      this.#units++;
      this.st.steps_done++;
    }
  }

  async #unit(): Promise<void> {
    const c = this.st.cursor;
    if (c.phase === "init" || c.phase === "score") {
      const target = c.phase === "init" ? this.st.infected_logits : this.st.current_logits!;
      await this.#scoreBatch(c.step, target);
      c.step++;
      if (c.step === c.total) {
        if (c.phase === "init") this.#finishInit();
        else this.#finishScore();
      }
      return;
    }
    if (c.phase === "evidence") {
      const units = this.#evidenceUnits ??= evidenceUnits(this.#evidenceCtx());
      const ev = this.st.evidence!;
      await runEvidenceUnit(this.#evidenceCtx(), units[c.step], ev, ev.arrays);
      c.step++;
      if (c.step === c.total) this.#finishEvidence();
      return;
    }
    const stage = this.#schedule.stages[c.stage];
    if (stage.kind === "reconstruct") await this.#reconstructStep(stage, c.stage, c.step);
    else await this.#trainStep(stage, c.stage, c.step);
    c.step++;
    if (c.step === c.total) await this.#finishStage();
  }

  async #scoreBatch(b: number, into: Float32Array): Promise<void> {
    const bs = this.#schedule.score_batch_size;
    const from = b * bs;
    const m = Math.min(bs, this.#n - from);
    const idx = Int32Array.from({ length: m }, (_, j) => from + j);
    const z = tf.tidy(() => this.clf.logits(this.#batch(idx), false));
    into.set(await z.data() as Float32Array, from * this.#k);
    z.dispose();
  }

  #evidenceCtx(): EvidenceContext {
    const { height: h, width: w, channels: c } = this.st.dataset;
    return {
      clf: this.clf,
      labels: this.labels,
      infected: this.st.infected_logits,
      dims: { h, w, c, k: this.#k },
      options: this.#schedule.suspect.evidence,
      seed: this.st.seed,
      batch: (idx) => this.#batch(idx),
      signal: this.ctx.signal,
    };
  }

  #finishInit(): void {
    if (this.#schedule.suspect.rule === "evidence") {
      const ctx = this.#evidenceCtx();
      const units = evidenceUnits(ctx);
      if (units.length > 0) {
        this.st.evidence = freshEvidence(ctx);
        this.#evidenceUnits = units;
        this.st.cursor = { phase: "evidence", stage: 0, step: 0, total: units.length, attempt: 0 };
        return;
      }
    }
    const s = suspectClass(this.labels, this.#k, this.#schedule.suspect);
    this.#start({
      class: s.class,
      classes: s.class === null ? [] : [s.class],
      all_to_all: false,
      label_consistent: false,
      counts: s.counts,
      excess: s.excess,
      per_class: null,
      untargeted: null,
    });
  }

  /** The evidence is in: decide the suspects and keep their triggers for stamping. */
  #finishEvidence(): void {
    const rule = this.#schedule.suspect;
    const ev = this.st.evidence!;
    const d = evidenceDecision(this.#evidenceCtx(), ev, rule.min_excess);
    const s = suspectClass(this.labels, this.#k, rule);
    const { height: h, width: w, channels: c } = this.st.dataset;
    this.st.stamps = evidenceStamps(d, ev, ev.arrays, { h, w, c, k: this.#k });
    this.st.evidence = null;
    const primary = d.primary;
    this.#start({
      class: primary,
      classes: d.classes,
      all_to_all: d.all_to_all,
      label_consistent: primary !== null && d.per_class[primary].label_excess < rule.min_excess,
      counts: s.counts,
      excess: s.excess,
      per_class: d.per_class,
      untargeted: d.untargeted,
    });
  }

  #start(suspect: NonNullable<RoundState["suspect"]>): void {
    this.st.suspect = suspect;
    this.st.membership = initialMembership(
      this.#schedule,
      this.labels,
      this.st.infected_logits,
      this.#k,
      suspect.all_to_all ? [] : suspect.classes,
      this.st.seed,
    );
    this.#cleanCache = undefined;
    this.#events.push({
      event: "start",
      suspect_class: suspect.class,
      suspect_classes: suspect.classes,
      all_to_all: suspect.all_to_all,
      label_consistent: suspect.label_consistent,
      label_counts: suspect.counts,
      label_excess: round4(suspect.excess),
      clean_set: this.#clean().length,
      ...(suspect.per_class ? { evidence: suspect.per_class } : {}),
      ...(suspect.untargeted ? { untargeted: suspect.untargeted } : {}),
      ...(this.st.stamps ? { stamps: this.st.stamps.kinds } : {}),
    });
    this.#enterStage(0);
  }

  /** Suspected classes the rescoring ranks (every class when all-to-all is suspected). */
  #suspects(): number[] {
    return this.st.suspect?.classes ?? [];
  }

  /** Sets up stage `s` (or `done`), skipping stages that have nothing to do. */
  #enterStage(s: number): void {
    const stages = this.#schedule.stages;
    this.#resetMomentum();
    this.#disposeTeacherAndReference();
    this.#permCache.clear();
    for (; s < stages.length; s++) {
      const stage = stages[s];
      if (stage.kind === "reconstruct") {
        const target = this.st.suspect?.class ?? null;
        if (target === null) {
          this.#events.push({ event: "skip", stage: stage.name, reason: "no suspected class" });
          continue;
        }
        const { height: h, width: w, channels: c } = this.st.dataset;
        disposeTriggerVars(this.#trigger);
        this.#stamps.reset();
        // The evidence phase's search towards the target is where this one starts.
        const start = initialTriggerArrays(h, w, c);
        const scanned = stampData(this.st, "patch", target); // kept only when it worked
        if (scanned) {
          start.maskLogits.set(scanned.subarray(0, h * w));
          start.patternLogits.set(scanned.subarray(h * w));
        }
        this.#trigger = triggerVars(start, h, w, c);
        this.st.trigger = { target, mask_mean: null, success: null, arrays: start };
        this.st.cursor = { phase: "stage", stage: s, step: 0, total: stage.steps, attempt: 0 };
        return;
      }
      const total = trainStageSteps(stage, this.#clean().length);
      if (stage.losses.mean_teacher > 0) {
        this.#teacher = MeanTeacher.of(this.vars);
      }
      if (stage.unlearn.anchor_l1 > 0 || stage.revert) {
        this.#reference = this.vars.map((v) => tf.clone(v));
      }
      // Only training mode moves them (tfjs updates them inside apply(training: true)).
      if (stage.revert && this.#training && this.#fixedVars.length > 0) {
        this.#referenceFixed = this.#fixedVars.map((v) => tf.clone(v));
      }
      if (isMultiProbe(stage)) {
        this.st.probe = {
          base_membership: this.st.membership.slice(),
          best_separation: null,
          best_attempt: null,
        };
      }
      this.st.cursor = { phase: "stage", stage: s, step: 0, total, attempt: 0 };
      return;
    }
    this.st.cursor = { phase: "done", stage: stages.length, step: 0, total: 0, attempt: 0 };
  }

  async #finishStage(): Promise<void> {
    const s = this.st.cursor.stage;
    const stage = this.#schedule.stages[s];
    const event: StageEndEvent = {
      event: "stage_end",
      stage: stage.name,
      time_ms: this.st.timing[`total:${stage.name}`] ?? 0,
    };
    if (stage.kind === "reconstruct" && this.st.trigger) {
      event.trigger = {
        target: this.st.trigger.target,
        mask_mean: this.st.trigger.mask_mean,
        success: this.st.trigger.success,
      };
    }
    this.#events.push(event);
    await this.#evaluate(stage.name);
    if (stage.kind === "train" && stage.rescore !== null) {
      this.st.current_logits = new Float32Array(this.#n * this.#k);
      this.#resetMomentum();
      // A probe keeps its starting weights until the scoring pass is over.
      this.#disposeTeacherAndReference(stage.revert);
      this.st.cursor = {
        phase: "score",
        stage: s,
        step: 0,
        total: scoreUnits(this.#schedule, this.#n),
        attempt: this.st.cursor.attempt,
      };
      return;
    }
    if (stage.kind === "train" && stage.revert) this.#revert(stage.name);
    this.#enterStage(s + 1);
  }

  #finishScore(): void {
    const s = this.st.cursor.stage;
    const attempt = this.st.cursor.attempt;
    const stage = this.#schedule.stages[s] as TrainStage;
    const multi = isMultiProbe(stage);
    const probe = this.st.probe;
    const out = rescore({
      stage,
      attempt,
      infected: this.st.infected_logits,
      current: this.st.current_logits!,
      labels: this.labels,
      numClasses: this.#k,
      suspects: this.#suspects(),
      base: multi ? probe!.base_membership : this.st.membership,
      bestSeparation: probe?.best_separation ?? null,
      poisoned: this.ctx.evaluate?.poisoned,
    });
    if (out.adopt) {
      const r = out.selection;
      this.st.scores = out.scores;
      this.st.membership = r.membership;
      this.st.relabel = r.relabel;
      if (multi) {
        probe!.best_separation = round4(r.separation ?? 0);
        probe!.best_attempt = attempt;
      }
    }
    this.st.current_logits = null;
    this.#cleanCache = undefined;
    this.#permCache.clear();
    this.#events.push(out.event);
    if (stage.revert) this.#revert(stage.name);
    if (multi && attempt + 1 < stage.probe_lrs!.length) {
      // The next rate starts from the same weights (just restored) and a fresh momentum.
      this.#resetMomentum();
      this.st.cursor = {
        phase: "stage",
        stage: s,
        step: 0,
        total: trainStageSteps(stage, this.#clean().length),
        attempt: attempt + 1,
      };
      return;
    }
    if (multi) {
      this.#events.push({
        event: "probe_choice",
        stage: stage.name,
        attempt: probe!.best_attempt,
        lr: stage.probe_lrs![probe!.best_attempt ?? 0],
        separation: probe!.best_separation,
      });
      this.st.probe = null;
      this.#cleanCache = undefined;
    }
    this.#enterStage(s + 1);
  }

  /** Restores the weights the stage started from (a probe leaves the model as it found it). */
  #revert(stage: string): void {
    const ref = this.#reference!;
    tf.tidy(() => this.vars.forEach((v, i) => v.assign(ref[i])));
    const fixed = this.#referenceFixed;
    if (fixed) tf.tidy(() => this.#fixedVars.forEach((v, i) => v.assign(fixed[i])));
    this.#events.push({ event: "revert", stage });
  }

  async #evaluate(stage: string): Promise<void> {
    const ev = this.ctx.evaluate;
    if (ev === undefined) return;
    const t0 = performance.now();
    const r: EvaluateReport = await evaluate(this.clf, ev, {
      batchSize: ev.batchSize,
      signal: this.ctx.signal,
    });
    this.#events.push({
      event: "evaluation",
      stage,
      clean_accuracy: roundOrNull(r.clean.accuracy),
      asr: roundOrNull(r.backdoor?.asr ?? null),
      robust_accuracy: roundOrNull(r.robust?.robust_accuracy ?? null),
      per_class_accuracy: r.clean.per_class.map((f) => roundOrNull(f.value)),
      time_ms: r.time_ms,
    });
    this.#evalMs += performance.now() - t0;
  }

  async #reconstructStep(stage: ReconstructStage, s: number, step: number): Promise<void> {
    const trig = this.#trigger!;
    const target = this.st.trigger!.target;
    const clean = this.#clean();
    const others = clean.filter((i) => this.labels[i] !== target);
    const pool = others.length > 0 ? others : clean;
    const idx = this.#draw(pool, STREAM.reconstruct, s, step * stage.batch_size, stage.batch_size);
    const x = this.#batch(idx);
    try {
      const r = await reconstructionStep(this.clf, trig, x, target, stage.lr, stage.l1_weight);
      this.st.trigger!.mask_mean = round4(r.maskMean);
      this.st.trigger!.success = round4(r.success);
      this.#addLoss("reconstruct", r.loss);
    } finally {
      x.dispose();
    }
  }

  async #trainStep(stage: TrainStage, s: number, step: number): Promise<void> {
    const clean = this.#clean();
    const bs = Math.min(stage.batch_size, clean.length);
    this.#sgd ??= new MomentumSgd(this.vars, this.st.momentum);
    const spe = Math.ceil(clean.length / bs);
    const epoch = Math.floor(step / spe), b = step % spe;
    const from = epoch * clean.length + b * bs;
    const count = Math.min(bs, clean.length - b * bs);
    const idx = this.#draw(clean, STREAM.shuffle, s, from, count);
    const batch: StepBatch = { x: this.#batch(idx), y: this.#labelsOf(idx) };
    try {
      const w = stage.losses;
      if (w.adversarial > 0) {
        const target = stage.pgd.target === "suspect"
          ? this.st.suspect?.class ?? undefined
          : undefined;
        const r = await pgd(this.clf, batch.x, batch.y, {
          eps: stage.pgd.eps,
          steps: stage.pgd.steps,
          stepSize: stage.pgd.step_size ?? stage.pgd.eps / 4,
          randomStart: true,
          earlyStop: false,
          seed: opSeed(this.st.seed, STREAM.pgd, s, step),
          target,
          signal: this.ctx.signal,
        });
        batch.xAdv = r.adversarial;
      }
      if (w.trigger > 0) {
        const stamps = this.#stamps.forStep(this.st, this.#trigger);
        if (stamps.length > 0) batch.xTrig = stampEach(batch.x, stamps, step);
      }
      const flagged = w.unlearn > 0 ? this.#unlearnable() : new Int32Array(0);
      if (flagged.length > 0) {
        const fb = stage.unlearn.batch_size;
        const fIdx = this.#draw(flagged, STREAM.flaggedShuffle, s, step * fb, fb);
        batch.xFlag = this.#batch(fIdx);
        const relabel = this.st.relabel;
        batch.yFlag = stage.unlearn.mode === "relabel" && relabel
          ? this.#labelsOf(fIdx, relabel)
          : this.#labelsOf(fIdx);
      }
      if (w.mean_teacher > 0 && this.#teacher) {
        batch.teacherProbs = this.#teacher.probs(this.clf, this.vars, batch.x, this.#training);
      }
      if (w.distill > 0) {
        const k = this.#k, z0 = this.st.infected_logits;
        const rows = new Float32Array(idx.length * k);
        idx.forEach((i, j) => rows.set(z0.subarray(i * k, (i + 1) * k), j * k));
        batch.infectedLogits = tf.tensor2d(rows, [idx.length, k]);
        batch.agree = tf.tensor1d(
          Float32Array.from(idx, (i) => (rowArgmax(z0, i, k) === this.labels[i] ? 1 : 0)),
        );
      }
      const lr = stage.probe_lrs?.[this.st.cursor.attempt] ?? stage.lr;
      const losses = await trainStep(this.clf, this.vars, this.#sgd, { ...stage, lr }, batch, {
        training: this.#training,
        reference: this.#reference,
      });
      for (const [name, v] of Object.entries(losses)) this.#addLoss(name as LossTerm, v!);
      this.#teacher?.update(this.vars, stage.mean_teacher.ema_decay);
    } finally {
      tf.dispose(Object.values(batch));
      this.#stamps.endStep();
    }
  }

  #addLoss(name: ReportedLoss, v: number): void {
    if (!Number.isFinite(v)) return;
    this.#lossSums[name] = (this.#lossSums[name] ?? 0) + v;
    this.#lossCounts[name] = (this.#lossCounts[name] ?? 0) + 1;
  }

  #disposeTeacherAndReference(keepReference = false): void {
    this.#teacher?.dispose();
    this.#teacher = undefined;
    this.st.teacher = null;
    if (keepReference) return;
    if (this.#reference) tf.dispose(this.#reference);
    this.#reference = undefined;
    this.st.reference = null;
    if (this.#referenceFixed) tf.dispose(this.#referenceFixed);
    this.#referenceFixed = undefined;
    delete this.st.reference_fixed;
  }

  /** Drops the SGD momentum: a stage, a scoring pass and each probe attempt start without. */
  #resetMomentum(): void {
    this.#sgd?.dispose();
    this.#sgd = undefined;
    this.st.momentum = null;
  }

  async finish(start: number): Promise<RoundResult> {
    const st = this.st;
    const c = st.cursor;
    if (this.#sgd) st.momentum = await this.#sgd.export();
    if (this.#teacher) st.teacher = await this.#teacher.export();
    if (this.#reference) st.reference = await flatWeights(this.#reference);
    if (this.#referenceFixed) st.reference_fixed = await flatWeights(this.#referenceFixed);
    if (this.#trigger && st.trigger) st.trigger.arrays = await triggerArrays(this.#trigger);
    st.fingerprints = { ...st.fingerprints, current_model: await modelFingerprint(this.clf) };
    st.rounds++;

    const losses: Record<string, number> = {};
    for (const name of [...LOSS_TERMS, "reconstruct"] as const) {
      const cnt = this.#lossCounts[name];
      if (cnt) losses[name] = round4(this.#lossSums[name]! / cnt);
    }
    const remaining = remainingUnits(st, this.#clean().length);
    const flagged = this.#flagged();
    const events = this.#events.slice(0, 64);
    const entry = {
      round: st.rounds,
      stage: this.#stageLabel(),
      phase: c.phase,
      progress: progressShare(st.steps_done, remaining),
      steps: this.#units,
      time_ms: Math.round(performance.now() - start),
      losses,
      clean_set: this.#clean().length,
      flagged: flagged.length,
      events,
    };
    st.history.push(entry);
    if (st.history.length > MAX_HISTORY) {
      st.history_dropped += st.history.length - MAX_HISTORY;
      st.history.splice(0, st.history.length - MAX_HISTORY);
    }
    const done = c.phase === "done";
    if (done) entry.progress = 1;
    const sealed = await sealState(encodeState(st));
    return {
      state: sealed,
      live: st,
      done,
      report: {
        ...entry,
        done,
        suspect_class: st.suspect?.class ?? null,
        suspect_classes: st.suspect?.classes ?? [],
        all_to_all: st.suspect?.all_to_all ?? false,
        evidence: st.suspect?.per_class ?? null,
        flagged_indices: Array.from(flagged),
        timings: { ...st.timing },
      },
    };
  }

  dispose(): void {
    this.#x?.dispose();
    this.#sgd?.dispose();
    disposeTriggerVars(this.#trigger);
    this.#stamps.dispose();
    this.#teacher?.dispose();
    if (this.#reference) tf.dispose(this.#reference);
    if (this.#referenceFixed) tf.dispose(this.#referenceFixed);
  }
}

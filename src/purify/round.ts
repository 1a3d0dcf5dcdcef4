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
import { UnprocessableError } from "../errors.ts";
import { checkBatchFits, type ImageBatch } from "../io/images.ts";
import { checkLabels } from "../io/label_checks.ts";
import type { Classifier } from "../model/classifier.ts";
import { evaluate, type EvaluateInput, type EvaluateReport } from "../metrics/evaluate.ts";
import { auroc, flagMetrics } from "../metrics/detection.ts";
import { canonicalJson } from "./codec.ts";
import { resolveSchedule, type RoundParams } from "./params.ts";
import { opSeed, seededDraw } from "../random/rng.ts";
import { STREAM } from "./streams.ts";
import type { ReconstructStage, Schedule, TrainStage } from "./schedule.ts";
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
import { median } from "./target_evidence.ts";
import {
  initialMembership,
  reselect,
  rowArgmax,
  scopedSuspicion,
  suspectClass,
  suspicion,
} from "./selection.ts";
import { MomentumSgd } from "./sgd.ts";
import {
  CLEAN,
  type DecodedArrays,
  encode,
  FLAGGED,
  MAX_HISTORY,
  openState,
  type PurifyState,
  type RoundReportEntry,
  scoreUnits,
  sealState,
  stampSize,
  STATE_FORMAT,
  STATE_VERSION,
} from "./state.ts";
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
import { yieldPoint } from "../tensor/yield_point.ts";

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

export interface RoundReport extends RoundReportEntry {
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
  state: PurifyState;
  report: RoundReport;
  done: boolean;
}

type Unsealed = Omit<PurifyState, "checksum">;
/** Loss terms of train steps, plus the trigger reconstruction's objective. */
type ReportedLoss = LossTerm | "reconstruct";

/** Steps a train stage takes over a clean set of `clean` images. */
export function trainStageSteps(stage: TrainStage, clean: number): number {
  if (stage.steps !== undefined) return stage.steps;
  return Math.max(1, Math.ceil((stage.epochs * clean) / stage.batch_size));
}

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
  const [n, h, w, c] = images.shape;
  const k = clf.numClasses;
  const vars = trainableVariables(clf);
  const p = paramCount(clf);
  const [dsFp, modelFp] = await Promise.all([
    datasetFingerprint(images, labels),
    modelFingerprint(clf),
  ]);
  let st: Unsealed;
  let arrays: DecodedArrays;
  if (state === undefined) {
    const schedule = resolveSchedule(params.schedule);
    const seed = params.seed ?? 0;
    st = {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      schedule,
      seed,
      fingerprints: { dataset: dsFp, original_model: modelFp, current_model: modelFp },
      dataset: { n, height: h, width: w, channels: c, num_classes: k, params: p },
      cursor: { phase: "init", stage: 0, step: 0, total: scoreUnits(schedule, n), attempt: 0 },
      rounds: 0,
      steps_done: 0,
      suspect: null,
      evidence: null,
      stamps: null,
      infected_logits: "",
      current_logits: null,
      scores: null,
      membership: "",
      relabel: null,
      trigger: null,
      probe: null,
      momentum: null,
      teacher: null,
      reference: null,
      timing: {},
      history_dropped: 0,
      history: [],
    };
    arrays = {
      infectedLogits: new Float32Array(n * k),
      currentLogits: null,
      scores: null,
      membership: new Uint8Array(n),
      probeBase: null,
      relabel: null,
      momentum: null,
      teacher: null,
      reference: null,
      trigger: null,
      evidence: null,
      stamps: null,
    };
  } else {
    const opened = await openState(state, {
      n,
      height: h,
      width: w,
      channels: c,
      numClasses: k,
      params: p,
      datasetFingerprint: dsFp,
      modelFingerprint: modelFp,
    });
    st = opened.state;
    arrays = opened.arrays;
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
  const engine = new Engine(clf, vars, images, labels, st, arrays, ctx);
  try {
    const maxSteps = Math.min(ctx.maxSteps, params.max_steps ?? Infinity);
    const maxMs = Math.min(ctx.maxMs, params.max_ms ?? Infinity);
    await engine.run(maxSteps, maxMs, start);
    return await engine.finish(start);
  } finally {
    engine.dispose();
  }
}

/** The mutable working set of one round. */
class Engine {
  readonly #k: number;
  readonly #n: number;
  readonly #schedule: Schedule;
  #x: tf.Tensor4D | undefined;
  #sgd: MomentumSgd | undefined;
  #trigger: TriggerVars | undefined;
  #teacher: tf.Variable[] | undefined;
  #reference: tf.Tensor[] | undefined;
  #cleanCache: Int32Array | undefined;
  #permCache = new Map<string, Int32Array>();
  #units = 0;
  #evalMs = 0;
  #lossSums: Partial<Record<ReportedLoss, number>> = {};
  #lossCounts: Partial<Record<ReportedLoss, number>> = {};
  #events: Record<string, unknown>[] = [];
  #evidenceUnits: EvidenceUnit[] | undefined;
  #stampTensors: { mask: tf.Tensor3D; pattern: tf.Tensor3D; delta: tf.Tensor3D }[] | undefined;
  /** The reconstructed trigger's stamp parts made for the current step (disposed after it). */
  #liveStamp: { mask: tf.Tensor3D; pattern: tf.Tensor3D; delta: tf.Tensor3D }[] = [];

  constructor(
    readonly clf: Classifier,
    readonly vars: tf.Variable[],
    readonly images: ImageBatch,
    readonly labels: Int32Array,
    readonly st: Unsealed,
    readonly a: DecodedArrays,
    readonly ctx: RoundContext,
  ) {
    this.#k = clf.numClasses;
    this.#n = labels.length;
    this.#schedule = st.schedule;
    if (a.trigger) {
      const { height: h, width: w, channels: c } = st.dataset;
      this.#trigger = triggerVars(a.trigger, h, w, c);
    }
    if (a.teacher) this.#teacher = unflatten(vars, a.teacher).map((t) => keepVar(t));
    if (a.reference) this.#reference = unflatten(vars, a.reference);
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
      const m = this.a.probeBase ?? this.a.membership;
      const out: number[] = [];
      for (let i = 0; i < this.#n; i++) if (m[i] === CLEAN) out.push(i);
      this.#cleanCache = Int32Array.from(out);
    }
    return this.#cleanCache;
  }

  #flagged(): Int32Array {
    const out: number[] = [];
    for (let i = 0; i < this.#n; i++) if (this.a.membership[i] === FLAGGED) out.push(i);
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
      const target = c.phase === "init" ? this.a.infectedLogits : this.a.currentLogits!;
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
      await runEvidenceUnit(
        this.#evidenceCtx(),
        units[c.step],
        this.st.evidence!,
        this.a.evidence!,
      );
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
      infected: this.a.infectedLogits,
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
        const fresh = freshEvidence(ctx);
        this.st.evidence = fresh.state;
        this.a.evidence = fresh.arrays;
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
    const stamps = evidenceStamps(d, ev, this.a.evidence!, { h, w, c, k: this.#k });
    this.st.stamps = stamps && { kinds: stamps.kinds, data: "" };
    this.a.stamps = stamps?.data ?? null;
    this.st.evidence = null;
    this.a.evidence = null;
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

  #start(suspect: NonNullable<Unsealed["suspect"]>): void {
    this.st.suspect = suspect;
    this.a.membership = initialMembership(
      this.#schedule,
      this.labels,
      this.a.infectedLogits,
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
    this.#sgd?.dispose();
    this.#sgd = undefined;
    this.a.momentum = null;
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
        this.#disposeStampTensors();
        // The evidence phase's search towards the target is where this one starts.
        const start = initialTriggerArrays(h, w, c);
        const scanned = this.#stampData("patch", target); // kept only when it worked
        if (scanned) {
          start.maskLogits.set(scanned.subarray(0, h * w));
          start.patternLogits.set(scanned.subarray(h * w));
        }
        this.#trigger = triggerVars(start, h, w, c);
        this.st.trigger = {
          target,
          mask_logits: "",
          pattern_logits: "",
          adam_mask_m: "",
          adam_mask_v: "",
          adam_pattern_m: "",
          adam_pattern_v: "",
          adam_t: 0,
          mask_mean: null,
          success: null,
        };
        this.st.cursor = { phase: "stage", stage: s, step: 0, total: stage.steps, attempt: 0 };
        return;
      }
      const total = trainStageSteps(stage, this.#clean().length);
      if (stage.losses.mean_teacher > 0) {
        this.#teacher = this.vars.map((v) => keepVar(tf.clone(v)));
      }
      if (stage.unlearn.anchor_l1 > 0 || stage.revert) {
        this.#reference = this.vars.map((v) => tf.clone(v));
      }
      if (isMultiProbe(stage)) {
        this.a.probeBase = this.a.membership.slice();
        this.st.probe = { base_membership: "", best_separation: null, best_attempt: null };
      }
      this.st.cursor = { phase: "stage", stage: s, step: 0, total, attempt: 0 };
      return;
    }
    this.st.cursor = { phase: "done", stage: stages.length, step: 0, total: 0, attempt: 0 };
  }

  async #finishStage(): Promise<void> {
    const s = this.st.cursor.stage;
    const stage = this.#schedule.stages[s];
    const event: Record<string, unknown> = {
      event: "stage_end",
      stage: stage.name,
      ms: this.st.timing[`total:${stage.name}`] ?? 0,
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
      this.a.currentLogits = new Float32Array(this.#n * this.#k);
      this.#sgd?.dispose();
      this.#sgd = undefined;
      this.a.momentum = null;
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
    const rule = stage.rescore!;
    const z = this.a.currentLogits!;
    const suspects = this.#suspects();
    const multi = isMultiProbe(stage);
    const base = multi ? this.a.probeBase! : this.a.membership;
    const u = suspicion(rule.score, this.a.infectedLogits, z, this.labels, this.#k, suspects);
    const r = reselect(rule, u, this.a.infectedLogits, z, this.labels, base, this.#k, suspects);
    const probe = this.st.probe;
    const sep = r.separation ?? 0;
    const adopt = !multi || probe!.best_separation === null || sep > probe!.best_separation;
    const scores = scopedSuspicion(u, this.labels, rule, suspects);
    if (adopt) {
      this.a.scores = scores;
      this.a.membership = r.membership;
      this.a.relabel = r.relabel;
      if (multi) {
        probe!.best_separation = round4(sep);
        probe!.best_attempt = attempt;
      }
    }
    this.a.currentLogits = null;
    this.#cleanCache = undefined;
    this.#permCache.clear();
    const flagged = r.membership.reduce((c, m) => c + (m === FLAGGED ? 1 : 0), 0);
    const event: Record<string, unknown> = {
      event: "rescore",
      stage: stage.name,
      ...(multi ? { attempt, lr: stage.probe_lrs![attempt], adopted: adopt } : {}),
      score: rule.score,
      threshold: roundOrNull(r.threshold),
      separation: roundOrNull(r.separation),
      bimodal: r.bimodal,
      ...(r.groups.length > 1
        ? {
          groups: r.groups.map((g) => ({
            ...g,
            threshold: roundOrNull(g.threshold),
            separation: roundOrNull(g.separation),
          })),
        }
        : {}),
      newly_flagged: r.newlyFlagged,
      flagged,
      clean_set: r.membership.reduce((c, m) => c + (m === CLEAN ? 1 : 0), 0),
    };
    const truth = this.ctx.evaluate?.poisoned;
    if (truth && truth.length === this.#n) {
      const flags = Uint8Array.from(r.membership, (v) => (v === FLAGGED ? 1 : 0));
      const f = flagMetrics(flags, truth);
      let poisonInClean = 0;
      for (let i = 0; i < this.#n; i++) if (truth[i] && r.membership[i] === CLEAN) poisonInClean++;
      event.detection = {
        auroc: roundOrNull(auroc(scores, truth)),
        precision: round4(f.precision),
        recall: round4(f.recall),
        poison_in_clean_set: poisonInClean,
      };
    }
    this.#events.push(event);
    if (stage.revert) this.#revert(stage.name);
    if (multi && attempt + 1 < stage.probe_lrs!.length) {
      // The next rate starts from the same weights (just restored) and a fresh momentum.
      this.#sgd?.dispose();
      this.#sgd = undefined;
      this.a.momentum = null;
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
      this.a.probeBase = null;
      this.#cleanCache = undefined;
    }
    this.#enterStage(s + 1);
  }

  /** Restores the weights the stage started from (a probe leaves the model as it found it). */
  #revert(stage: string): void {
    const ref = this.#reference!;
    tf.tidy(() => this.vars.forEach((v, i) => v.assign(ref[i])));
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
      ms: Math.round(r.ms),
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
    this.#sgd ??= new MomentumSgd(this.vars, this.a.momentum);
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
        const stamps = this.#stamps();
        if (stamps.length > 0) batch.xTrig = stampEach(batch.x, stamps, step);
      }
      const flagged = w.unlearn > 0 ? this.#unlearnable() : new Int32Array(0);
      if (flagged.length > 0) {
        const fb = stage.unlearn.batch_size;
        const fIdx = this.#draw(flagged, STREAM.flaggedShuffle, s, step * fb, fb);
        batch.xFlag = this.#batch(fIdx);
        const relabel = this.a.relabel;
        batch.yFlag = stage.unlearn.mode === "relabel" && relabel
          ? this.#labelsOf(fIdx, relabel)
          : this.#labelsOf(fIdx);
      }
      if (w.mean_teacher > 0 && this.#teacher) batch.teacherProbs = this.#teacherProbs(batch.x);
      if (w.distill > 0) {
        const k = this.#k, z0 = this.a.infectedLogits;
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
      if (this.#teacher) this.#emaUpdate(stage.mean_teacher.ema_decay);
    } finally {
      tf.dispose(Object.values(batch));
      for (const l of this.#liveStamp.splice(0)) tf.dispose([l.mask, l.pattern, l.delta]);
    }
  }

  /** The evidence phase's stamps as kept in the state, each with its slice of the data. */
  *#stampEntries(): Generator<
    { kind: "patch" | "additive"; target: number | null; d: Float32Array }
  > {
    if (!this.st.stamps || !this.a.stamps) return;
    const { height: h, width: w, channels: c } = this.st.dataset;
    let off = 0;
    for (const s of this.st.stamps.kinds) {
      const size = stampSize(s.kind, h, w, c);
      yield { ...s, d: this.a.stamps.subarray(off, off + size) };
      off += size;
    }
  }

  /** The evidence phase's stamp data of `kind` towards `target`, if the state keeps one. */
  #stampData(kind: "patch" | "additive", target: number | null): Float32Array | undefined {
    for (const s of this.#stampEntries()) if (s.kind === kind && s.target === target) return s.d;
    return undefined;
  }

  /**
   * Every trigger the train stages stamp, as `(1 − m)·x + m·p + δ` parts: the reconstructed
   * trigger (live: a later reconstruct stage may still change it) and the evidence phase's
   * stamps, less the patch the reconstructed trigger refines.
   */
  #stamps(): { mask: tf.Tensor3D; pattern: tf.Tensor3D; delta: tf.Tensor3D }[] {
    const { height: h, width: w, channels: c } = this.st.dataset;
    if (this.#stampTensors === undefined) {
      const out: { mask: tf.Tensor3D; pattern: tf.Tensor3D; delta: tf.Tensor3D }[] = [];
      const refined = this.st.trigger?.target ?? null;
      for (const { d, ...s } of this.#stampEntries()) {
        if (s.kind === "patch" && this.#trigger && s.target === refined) continue;
        out.push(tf.tidy(() =>
          s.kind === "patch"
            ? {
              mask: tf.sigmoid(tf.tensor3d(d.subarray(0, h * w), [h, w, 1])) as tf.Tensor3D,
              pattern: tf.sigmoid(tf.tensor3d(d.subarray(h * w), [h, w, c])) as tf.Tensor3D,
              delta: tf.zeros([h, w, c]) as tf.Tensor3D,
            }
            : {
              mask: tf.zeros([h, w, 1]) as tf.Tensor3D,
              pattern: tf.zeros([h, w, c]) as tf.Tensor3D,
              delta: tf.tensor3d(d, [h, w, c]),
            }
        ));
      }
      this.#stampTensors = out;
    }
    if (!this.#trigger) return this.#stampTensors;
    const t = this.#trigger;
    const live = tf.tidy(() => ({
      mask: tf.sigmoid(t.maskLogits) as tf.Tensor3D,
      pattern: tf.sigmoid(t.patternLogits) as tf.Tensor3D,
      delta: tf.zeros([h, w, c]) as tf.Tensor3D,
    }));
    this.#liveStamp.push(live);
    return [live, ...this.#stampTensors];
  }

  #disposeStampTensors(): void {
    for (const s of this.#stampTensors ?? []) tf.dispose([s.mask, s.pattern, s.delta]);
    this.#stampTensors = undefined;
  }

  /** Softmax of the teacher on `x`: the teacher's weights are swapped in for one forward pass. */
  #teacherProbs(x: tf.Tensor4D): tf.Tensor2D {
    const saved = this.vars.map((v) => tf.clone(v));
    try {
      this.vars.forEach((v, i) => v.assign(this.#teacher![i]));
      return tf.tidy(() => tf.softmax(this.clf.logits(x, this.#training)));
    } finally {
      this.vars.forEach((v, i) => v.assign(saved[i]));
      tf.dispose(saved);
    }
  }

  #emaUpdate(decay: number): void {
    tf.tidy(() => {
      this.#teacher!.forEach((t, i) => {
        t.assign(tf.add(tf.mul(t, decay), tf.mul(this.vars[i], 1 - decay)));
      });
    });
  }

  #addLoss(name: ReportedLoss, v: number): void {
    if (!Number.isFinite(v)) return;
    this.#lossSums[name] = (this.#lossSums[name] ?? 0) + v;
    this.#lossCounts[name] = (this.#lossCounts[name] ?? 0) + 1;
  }

  #disposeTeacherAndReference(keepReference = false): void {
    if (this.#teacher) tf.dispose(this.#teacher);
    this.#teacher = undefined;
    this.a.teacher = null;
    if (keepReference) return;
    if (this.#reference) tf.dispose(this.#reference);
    this.#reference = undefined;
    this.a.reference = null;
  }

  /** Units still to run, with future train stages sized by the current clean set. */
  #remaining(): number {
    const c = this.st.cursor;
    if (c.phase === "done") return 0;
    const stages = this.#schedule.stages;
    const score = scoreUnits(this.#schedule, this.#n);
    let rest = c.total - c.step;
    let next = c.stage;
    if (c.phase === "init") {
      next = 0;
      if (this.#schedule.suspect.rule === "evidence") {
        rest += evidenceUnitsBound(this.#schedule, this.#k);
      }
    } else if (c.phase === "evidence") {
      next = 0;
    } else if (c.phase === "stage") {
      const s = stages[c.stage];
      if (s.kind === "train" && s.rescore !== null) rest += score;
      next = c.stage + 1;
    } else {
      next = c.stage + 1;
    }
    const current = stages[c.stage];
    if (
      c.phase !== "init" && c.phase !== "evidence" && current?.kind === "train" &&
      isMultiProbe(current)
    ) {
      const left = current.probe_lrs!.length - 1 - c.attempt;
      rest += left * (trainStageSteps(current, this.#clean().length) + score);
    }
    const clean = c.phase === "init" || c.phase === "evidence" ? this.#n : this.#clean().length;
    for (let s = next; s < stages.length; s++) {
      const stage = stages[s];
      if (stage.kind === "reconstruct") rest += stage.steps;
      else {
        rest += trainStageSteps(stage, clean);
        if (stage.rescore !== null) rest += score;
      }
    }
    return rest;
  }

  async finish(start: number): Promise<RoundResult> {
    const st = this.st;
    const c = st.cursor;
    if (this.#sgd) this.a.momentum = await this.#sgd.export();
    if (this.#teacher) this.a.teacher = await flatWeights(this.#teacher);
    if (this.#reference) this.a.reference = await flatWeights(this.#reference);
    if (this.#trigger && st.trigger) {
      const t = await triggerArrays(this.#trigger);
      st.trigger = {
        ...st.trigger,
        mask_logits: encode.f32(t.maskLogits),
        pattern_logits: encode.f32(t.patternLogits),
        adam_mask_m: encode.f32(t.maskM),
        adam_mask_v: encode.f32(t.maskV),
        adam_pattern_m: encode.f32(t.patternM),
        adam_pattern_v: encode.f32(t.patternV),
        adam_t: t.t,
      };
    }
    if (st.evidence && this.a.evidence) {
      const e = this.a.evidence;
      st.evidence = {
        ...st.evidence,
        patch_triggers: encode.f32(e.patchTriggers),
        additive_deltas: encode.f32(e.additiveDeltas),
        untargeted_trigger: e.untargetedTrigger ? encode.f32(e.untargetedTrigger) : null,
      };
    }
    if (st.stamps && this.a.stamps) st.stamps = { ...st.stamps, data: encode.f32(this.a.stamps) };
    st.infected_logits = encode.f32(this.a.infectedLogits);
    st.current_logits = this.a.currentLogits ? encode.f32(this.a.currentLogits) : null;
    st.scores = this.a.scores ? encode.f32(this.a.scores) : null;
    st.membership = encode.u8(this.a.membership);
    if (st.probe && this.a.probeBase) {
      st.probe = { ...st.probe, base_membership: encode.u8(this.a.probeBase) };
    }
    st.relabel = this.a.relabel ? encode.i32(this.a.relabel) : null;
    st.momentum = this.a.momentum ? encode.f32(this.a.momentum) : null;
    st.teacher = this.a.teacher ? encode.f32(this.a.teacher) : null;
    st.reference = this.a.reference ? encode.f32(this.a.reference) : null;
    st.fingerprints = { ...st.fingerprints, current_model: await modelFingerprint(this.clf) };
    st.rounds++;

    const losses: Record<string, number> = {};
    for (const name of [...LOSS_TERMS, "reconstruct"] as const) {
      const cnt = this.#lossCounts[name];
      if (cnt) losses[name] = round4(this.#lossSums[name]! / cnt);
    }
    const remaining = this.#remaining();
    const flagged = this.#flagged();
    const entry: RoundReportEntry = {
      round: st.rounds,
      stage: c.phase === "done" || c.phase === "init" || c.phase === "evidence"
        ? c.phase
        : this.#schedule.stages[c.stage].name,
      phase: c.phase,
      progress: round4(st.steps_done / Math.max(1, st.steps_done + remaining)),
      steps: this.#units,
      ms: Math.round(performance.now() - start),
      losses,
      clean_set: this.#clean().length,
      flagged: flagged.length,
      events: this.#events.slice(0, 64),
    };
    st.history.push(entry);
    if (st.history.length > MAX_HISTORY) {
      st.history_dropped += st.history.length - MAX_HISTORY;
      st.history.splice(0, st.history.length - MAX_HISTORY);
    }
    const done = c.phase === "done";
    if (done) entry.progress = 1;
    const sealed = await sealState(st);
    return {
      state: sealed,
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
    this.#disposeStampTensors();
    if (this.#teacher) tf.dispose(this.#teacher);
    if (this.#reference) tf.dispose(this.#reference);
  }
}

/** Most units an evidence phase can take (before the infected logits say how many apply). */
function evidenceUnitsBound(schedule: Schedule, k: number): number {
  const o = schedule.suspect.evidence;
  const landing = o.landing_per_class > 0 ? Math.ceil((k * o.landing_per_class) / o.batch_size) : 0;
  const patch = o.patch_steps > 0 ? k + (o.untargeted ? 1 : 0) : 0;
  return landing + patch + (o.additive_steps > 0 ? k : 0);
}

/** A probe that tries several learning rates and keeps the cleanest split. */
function isMultiProbe(stage: TrainStage): boolean {
  return stage.revert && stage.rescore !== null && (stage.probe_lrs?.length ?? 0) > 1;
}

/** A non-trainable variable holding `t` (consumed). */
function keepVar(t: tf.Tensor): tf.Variable {
  const v = tf.variable(t, false);
  t.dispose(); // the variable holds its own reference to the data
  return v;
}

function round4(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

function roundOrNull(v: number | null): number | null {
  return v === null ? null : round4(v);
}

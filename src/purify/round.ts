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
 * Determinism: every shuffle and random start is drawn from the seed and the cursor (`rng.ts`),
 * the SGD momentum, teacher and anchor weights and the trigger's Adam moments travel in the state
 * bit for bit, and layers run in inference mode by default (no dropout draws), so on one backend
 * a run split into any number of rounds ends with the same weights as one long round.
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
import { checkLabels } from "../metrics/check.ts";
import type { Classifier } from "../model/classifier.ts";
import { evaluate, type EvaluateInput, type EvaluateReport } from "../metrics/evaluate.ts";
import { auroc, flagMetrics } from "../detect/roc.ts";
import { canonicalJson } from "./codec.ts";
import { resolveSchedule, type RoundParams } from "./params.ts";
import { CounterRng, opSeed, STREAM } from "./rng.ts";
import type { ReconstructStage, Schedule, TrainStage } from "./schedule.ts";
import {
  initialMembership,
  reselect,
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
  STATE_FORMAT,
  STATE_VERSION,
} from "./state.ts";
import { LOSS_TERMS, type LossTerm, type StepBatch, trainStep } from "./train_step.ts";
import {
  disposeTriggerVars,
  initialTriggerArrays,
  reconstructionStep,
  stamp,
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
  suspect_class: number | null;
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

  /** Indices `[from, from + count)` of the endless sequence of seeded shuffles of `pool`. */
  #draw(pool: Int32Array, stream: number, stage: number, from: number, count: number): Int32Array {
    const out = new Int32Array(count);
    for (let j = 0; j < count; j++) {
      const pos = from + j;
      const epoch = Math.floor(pos / pool.length);
      const key = `${stream}:${stage}:${epoch}`;
      let perm = this.#permCache.get(key);
      if (perm === undefined) {
        perm = new CounterRng(this.st.seed, stream, stage, epoch).shuffle(pool.slice());
        this.#permCache.set(key, perm);
      }
      out[j] = perm[pos % pool.length];
    }
    return out;
  }

  #stageLabel(): string {
    const c = this.st.cursor;
    return c.phase === "init" || c.phase === "done" ? c.phase : this.#schedule.stages[c.stage].name;
  }

  #unitKey(): string {
    const c = this.st.cursor;
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

  #finishInit(): void {
    const s = suspectClass(this.labels, this.#k, this.#schedule.suspect);
    this.st.suspect = s;
    this.a.membership = initialMembership(
      this.#schedule,
      this.labels,
      this.a.infectedLogits,
      this.#k,
      s.class,
      this.st.seed,
    );
    this.#cleanCache = undefined;
    this.#events.push({
      event: "start",
      suspect_class: s.class,
      label_counts: s.counts,
      label_excess: round4(s.excess),
      clean_set: this.#clean().length,
    });
    this.#enterStage(0);
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
        this.#trigger = triggerVars(initialTriggerArrays(h, w, c), h, w, c);
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
    const suspect = this.st.suspect?.class ?? null;
    const multi = isMultiProbe(stage);
    const base = multi ? this.a.probeBase! : this.a.membership;
    const u = suspicion(rule.score, this.a.infectedLogits, z, this.#n, this.#k, suspect);
    const r = reselect(rule, u, this.a.infectedLogits, z, this.labels, base, this.#k, suspect);
    const probe = this.st.probe;
    const sep = r.separation ?? 0;
    const adopt = !multi || probe!.best_separation === null || sep > probe!.best_separation;
    const scores = scopedSuspicion(u, this.labels, rule, suspect);
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
          seed: opSeed(this.st.seed, s, step),
          target,
          signal: this.ctx.signal,
        });
        batch.xAdv = r.adversarial;
      }
      if (w.trigger > 0 && this.#trigger) {
        const t = this.#trigger;
        batch.xTrig = tf.tidy(() => stamp(batch.x, t.maskLogits, t.patternLogits));
      }
      const flagged = w.unlearn > 0 ? this.#flagged() : new Int32Array(0);
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
      const lr = stage.probe_lrs?.[this.st.cursor.attempt] ?? stage.lr;
      const losses = await trainStep(this.clf, this.vars, this.#sgd, { ...stage, lr }, batch, {
        training: this.#training,
        reference: this.#reference,
      });
      for (const [name, v] of Object.entries(losses)) this.#addLoss(name as LossTerm, v!);
      if (this.#teacher) this.#emaUpdate(stage.mean_teacher.ema_decay);
    } finally {
      tf.dispose(Object.values(batch));
    }
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
    } else if (c.phase === "stage") {
      const s = stages[c.stage];
      if (s.kind === "train" && s.rescore !== null) rest += score;
      next = c.stage + 1;
    } else {
      next = c.stage + 1;
    }
    const current = stages[c.stage];
    if (c.phase !== "init" && current?.kind === "train" && isMultiProbe(current)) {
      const left = current.probe_lrs!.length - 1 - c.attempt;
      rest += left * (trainStageSteps(current, this.#clean().length) + score);
    }
    const clean = c.phase === "init" ? this.#n : this.#clean().length;
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
      stage: c.phase === "done"
        ? "done"
        : c.phase === "init"
        ? "init"
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
        flagged_indices: Array.from(flagged),
        timings: { ...st.timing },
      },
    };
  }

  dispose(): void {
    this.#x?.dispose();
    this.#sgd?.dispose();
    disposeTriggerVars(this.#trigger);
    if (this.#teacher) tf.dispose(this.#teacher);
    if (this.#reference) tf.dispose(this.#reference);
  }
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

/**
 * The purification round state: everything one round hands the next, as strictly validated JSON
 * (the `state` part of `POST /v1/purify/rounds`).
 *
 * It carries the schedule, the cursor, the seed (all randomness is derived from the seed and the
 * cursor, see `streams.ts`), fingerprints of the dataset, of the original model and of the model
 * the last round returned, the infected model's logits on the extra set (computed once, in the
 * first rounds), scores, clean-set membership and flags, the reconstructed trigger with its Adam
 * moments, the SGD momentum buffer, mean-teacher and anchor weights when a stage needs them, and
 * a history of round reports. Numeric arrays are base64 of little-endian float32/int32/uint8, so
 * they come back bit for bit and a resumed run ends exactly where an uninterrupted one does.
 *
 * Integrity: `checksum` is a SHA-256 of the canonical JSON of every other field. It catches
 * accidental edits and truncation, not an attacker (who can recompute it); nothing in the state is
 * trusted beyond what the schema and the cross-checks below enforce, and the weights it carries
 * only ever steer a model the client itself sent.
 *
 * @module
 */
import { z } from "zod";
import { UnprocessableError, ValidationError } from "../errors.ts";
import {
  base64ToF32,
  base64ToI32,
  base64ToU8,
  bytesToBase64,
  canonicalJson,
  f32ToBase64,
  i32ToBase64,
  sha256Hex,
} from "./codec.ts";
import { isMultiProbe, type Schedule, ScheduleSchema } from "./schedule.ts";
import type { TriggerArrays } from "./trigger_reconstruction.ts";

export const STATE_FORMAT = "purifier.purify.state";
export const STATE_VERSION = 1;
/** Most round reports kept in `history`; older ones are dropped (their count is kept). */
export const MAX_HISTORY = 200;

/** Membership codes of `membership`. */
export const POOL = 0, CLEAN = 1, FLAGGED = 2;

const hex = z.string().regex(/^[0-9a-f]{64}$/).describe("lower-case hex SHA-256");
const b64 = z.string().max(512 * 1024 * 1024).regex(/^[A-Za-z0-9+/]*={0,2}$/).describe(
  "base64 of little-endian numbers",
);
const count = z.int().min(0).max(2 ** 31 - 1);

const CursorSchema = z.object({
  phase: z.enum(["init", "evidence", "stage", "score", "done"]).describe(
    "init: infected logits; evidence: per-class evidence from the infected model (suspects); " +
      "stage: training or reconstruction; score: re-scoring after a stage",
  ),
  stage: count.describe("index into schedule.stages"),
  step: count.describe("units done in this phase"),
  total: count.describe("units this phase takes"),
  attempt: count.describe("which of a probe's learning rates is running (0 otherwise)"),
}).strict();

const TriggerStateSchema = z.object({
  target: count,
  mask_logits: b64,
  pattern_logits: b64,
  adam_mask_m: b64,
  adam_mask_v: b64,
  adam_pattern_m: b64,
  adam_pattern_v: b64,
  adam_t: count,
  /** Mean mask value and attack success on the last reconstruction batch (reports only). */
  mask_mean: z.number().min(0).max(1).nullable(),
  success: z.number().min(0).max(1).nullable(),
}).strict();

const share = z.number().min(0).max(1);
const finite = z.number().min(-1e9).max(1e9);
const classList = z.array(count).max(1000);

export const ClassEvidenceSchema = z.object({
  class: count,
  count,
  label_excess: finite,
  landing: share.nullable(),
  landing_index: finite.nullable(),
  patch_mask: share.nullable(),
  patch_success: share.nullable(),
  patch_index: finite.nullable(),
  additive_success: share.nullable(),
  additive_index: finite.nullable(),
  score: finite,
}).strict();

export const UntargetedEvidenceSchema = z.object({
  patch_mask: share,
  patch_success: share,
  destinations: z.array(z.object({ class: z.int().min(-1).max(999), share }).strict()).max(1000),
  distinct_destinations: count,
}).strict();

/** The evidence phase's measurements so far (per class; null until measured). */
export const EvidenceStateSchema = z.object({
  landing_hits: classList,
  landing_sources: classList,
  patch_mask: z.array(share.nullable()).max(1000),
  patch_success: z.array(share.nullable()).max(1000),
  additive_success: z.array(share.nullable()).max(1000),
  untargeted: z.object({
    mask: share,
    success: share,
    flips: z.array(classList).max(1000),
  }).strict().nullable(),
  patch_triggers: b64.describe("K × (H·W mask logits + H·W·C pattern logits), float32"),
  additive_deltas: b64.describe("K × H·W·C perturbations, float32"),
  untargeted_trigger: b64.nullable().describe("H·W mask logits + H·W·C pattern logits"),
}).strict();

/** A trigger the train stages stamp (besides the reconstructed one): kind and data. */
export const StampSchema = z.object({
  kind: z.enum(["patch", "additive"]),
  target: count.nullable().describe("the class it was searched towards; null: untargeted"),
}).strict();

/**
 * Round reports of states written before durations were named `time_ms` (as in every other
 * reply) carry `ms`: they are read as `time_ms`, so those states still open. The checksum covers
 * the state as it was written, not this reading.
 */
function legacyReport(v: unknown): unknown {
  if (v === null || typeof v !== "object" || Array.isArray(v) || !("ms" in v)) return v;
  const { ms, ...rest } = v as Record<string, unknown>;
  return "time_ms" in rest ? v : { ...rest, time_ms: ms };
}

export const RoundReportSchema = z.preprocess(
  legacyReport,
  z.object({
    round: count,
    stage: z.string().max(64),
    phase: z.string().max(16),
    progress: z.number().min(0).max(1),
    steps: count,
    time_ms: z.number().min(0).describe("wall time of the round"),
    losses: z.record(z.string().max(32), z.number()).refine((r) => Object.keys(r).length <= 16),
    clean_set: count,
    flagged: count,
    events: z.array(z.record(z.string().max(64), z.unknown())).max(64),
  }).strict(),
);

export const StateSchema = z.object({
  format: z.literal(STATE_FORMAT),
  version: z.literal(STATE_VERSION),
  schedule: ScheduleSchema,
  seed: z.int().min(0).max(2 ** 31 - 1),
  fingerprints: z.object({
    dataset: hex.describe("SHA-256 of the extra set's shape, pixels and labels"),
    original_model: hex.describe("SHA-256 of the weights of the model the first round received"),
    current_model: hex.describe("SHA-256 of the weights the last round returned"),
  }).strict(),
  dataset: z.object({
    n: count.min(1),
    height: count.min(1),
    width: count.min(1),
    channels: count.min(1),
    num_classes: count.min(2),
    params: count.describe("trainable scalars of the model"),
  }).strict(),
  cursor: CursorSchema,
  rounds: count,
  steps_done: count,
  suspect: z.object({
    class: count.nullable().describe("the most anomalous suspect (reconstruction refines it)"),
    classes: classList.describe("every suspected target class"),
    all_to_all: z.boolean(),
    label_consistent: z.boolean().describe(
      "the primary suspect's label count does not stand out: its poison, if any, carries true " +
        "labels (a clean-label attack), so its flagged images are left out of the clean set " +
        "but not unlearned",
    ),
    counts: z.array(count).max(100_000),
    excess: z.number(),
    per_class: z.array(ClassEvidenceSchema).max(1000).nullable(),
    untargeted: UntargetedEvidenceSchema.nullable(),
  }).strict().nullable(),
  evidence: EvidenceStateSchema.nullable(),
  stamps: z.object({ kinds: z.array(StampSchema).max(1001), data: b64 }).strict().nullable()
    .describe("triggers from the evidence phase that train stages stamp with true labels"),
  infected_logits: b64,
  current_logits: b64.nullable(),
  scores: b64.nullable(),
  membership: b64,
  relabel: b64.nullable(),
  trigger: TriggerStateSchema.nullable(),
  probe: z.object({
    base_membership: b64.describe("the membership every attempt of the probe selects from"),
    best_separation: z.number().min(0).max(1).nullable(),
    best_attempt: count.nullable(),
  }).strict().nullable().describe("a multi-rate probe in progress"),
  momentum: b64.nullable(),
  teacher: b64.nullable(),
  reference: b64.nullable(),
  reference_fixed: b64.optional().describe(
    "the model's non-trainable weights (batch-norm moving statistics) when a reverting stage " +
      "began, in train_mode train; absent otherwise",
  ),
  timing: z.record(z.string().max(32), z.number().min(0)).refine(
    (t) => Object.keys(t).length <= 64,
    "at most 64 timing entries",
  ).describe(
    "measured ms per unit of work by phase (used to stop before the time budget) and " +
      "'total:<stage>' work time per stage (not deterministic)",
  ),
  history_dropped: count,
  history: z.array(RoundReportSchema).max(MAX_HISTORY),
  checksum: hex,
}).strict();

export type PurifyState = z.output<typeof StateSchema>;
export type RoundReportEntry = z.output<typeof RoundReportSchema>;
type Unsealed = Omit<PurifyState, "checksum">;
type EvidenceState = NonNullable<PurifyState["evidence"]>;

/** The evidence phase's measurements, without its trigger arrays. */
export type EvidenceMeasures = Omit<
  EvidenceState,
  "patch_triggers" | "additive_deltas" | "untargeted_trigger"
>;

/** Fields whose JSON form is base64 and whose {@link RoundState} form is a typed array. */
type ArrayFields =
  | "infected_logits"
  | "current_logits"
  | "scores"
  | "membership"
  | "relabel"
  | "momentum"
  | "teacher"
  | "reference"
  | "reference_fixed"
  | "trigger"
  | "probe"
  | "evidence"
  | "stamps";

/**
 * The state as a round works on it: the fields of {@link PurifyState} (less the checksum) with
 * every base64 array decoded in place. {@link openState} and {@link freshState} make one,
 * {@link encodeState} and {@link sealState} turn it back into the wire form.
 */
export interface RoundState extends Omit<Unsealed, ArrayFields> {
  /** `[N, K]` logits of the infected model. */
  infected_logits: Float32Array;
  /** `[N, K]` logits of the current model while a scoring pass runs. */
  current_logits: Float32Array | null;
  /** `[N]` suspicion scores of the last adopted re-selection. */
  scores: Float32Array | null;
  /** `[N]` {@link POOL}, {@link CLEAN} or {@link FLAGGED}. */
  membership: Uint8Array;
  /** `[N]` labels flagged images are unlearned towards (-1: none). */
  relabel: Int32Array | null;
  /** Flat SGD momentum, mean-teacher and anchor weights (`params` floats each). */
  momentum: Float32Array | null;
  teacher: Float32Array | null;
  reference: Float32Array | null;
  /**
   * The non-trainable weights a reverting stage restores too (train_mode train: batch norm moves
   * its moving statistics while training); their count is checked against the model by the round.
   */
  reference_fixed?: Float32Array;
  /** The reconstructed trigger, with its Adam moments. */
  trigger: LiveTrigger | null;
  probe: {
    base_membership: Uint8Array;
    best_separation: number | null;
    best_attempt: number | null;
  } | null;
  evidence: LiveEvidence | null;
  /** Concatenated stamp data of `kinds`, in order. */
  stamps: { kinds: Stamp[]; data: Float32Array } | null;
}

/** A reconstructed trigger in a {@link RoundState}. */
export interface LiveTrigger {
  target: number;
  /** Mean mask value and attack success on the last reconstruction batch (reports only). */
  mask_mean: number | null;
  success: number | null;
  arrays: TriggerArrays;
}

/** The evidence phase's state in a {@link RoundState}. */
export type LiveEvidence = EvidenceMeasures & { arrays: EvidenceArrays };

/** A stamp kind of `stamps.kinds`. */
export type Stamp = z.output<typeof StampSchema>;

/** The shape of the first round's extra set and model. */
export interface StateDims {
  n: number;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  params: number;
}

/**
 * The state of a purification that has not started: cursor at the first unit of the infected
 * logits' scoring pass, every image in the pool, nothing suspected.
 */
export function freshState(
  schedule: Schedule,
  seed: number,
  d: StateDims,
  fingerprints: { dataset: string; model: string },
): RoundState {
  const { n, numClasses: k } = d;
  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    schedule,
    seed,
    fingerprints: {
      dataset: fingerprints.dataset,
      original_model: fingerprints.model,
      current_model: fingerprints.model,
    },
    dataset: {
      n,
      height: d.height,
      width: d.width,
      channels: d.channels,
      num_classes: k,
      params: d.params,
    },
    cursor: { phase: "init", stage: 0, step: 0, total: scoreUnits(schedule, n), attempt: 0 },
    rounds: 0,
    steps_done: 0,
    suspect: null,
    evidence: null,
    stamps: null,
    infected_logits: new Float32Array(n * k),
    current_logits: null,
    scores: null,
    membership: new Uint8Array(n),
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
}

/** What the request the state comes with looks like; the state must fit it. */
export interface StateExpectation extends StateDims {
  datasetFingerprint: string;
  modelFingerprint: string;
}

export interface EvidenceArrays {
  patchTriggers: Float32Array;
  additiveDeltas: Float32Array;
  untargetedTrigger: Float32Array | null;
}

/** Floats of one stamp of `kind` on `h`×`w`×`c` images. */
export function stampSize(kind: "patch" | "additive", h: number, w: number, c: number): number {
  return kind === "patch" ? h * w + h * w * c : h * w * c;
}

const CHECKSUM_DOMAIN = "purifier.purify.state/v1\n";

/** SHA-256 of the canonical JSON of the state without its checksum. */
export function stateChecksum(state: Unsealed): Promise<string> {
  const { checksum: _drop, ...rest } = state as PurifyState;
  return sha256Hex(new TextEncoder().encode(CHECKSUM_DOMAIN + canonicalJson(rest)));
}

/** Adds (or replaces) the checksum. */
export async function sealState(state: Unsealed): Promise<PurifyState> {
  return { ...state, checksum: await stateChecksum(state) } as PurifyState;
}

/**
 * Parses and checks a state against the request it came with.
 *
 * @throws {ValidationError} (400) not a state object, a field out of its schema, a checksum that
 *   does not match (the state was edited), a cursor outside the schedule, arrays of the wrong
 *   length or with values out of range.
 * @throws {UnprocessableError} (422) a well-formed state that belongs to another dataset, another
 *   model (the model sent is not the one the last round returned), or another model shape.
 */
export async function openState(
  json: unknown,
  expect: StateExpectation,
): Promise<RoundState> {
  const r = StateSchema.safeParse(json);
  if (!r.success) {
    throw ValidationError.fromZod(r.error, {
      label: "invalid purification state",
      root: "state",
      hint: "send the state the previous round returned, unmodified",
      max: 20,
    });
  }
  const state = r.data;
  // Over what was sent, which the schema has accepted: reading old reports renames a field.
  const sum = await stateChecksum(json as PurifyState);
  if (sum !== state.checksum) {
    throw new ValidationError(
      "the purification state's checksum does not match its content: it was modified or " +
        "truncated; send the state the previous round returned, unmodified",
    );
  }
  checkFits(state, expect);
  checkCursor(state);
  return decodeState(state);
}

function checkFits(state: PurifyState, e: StateExpectation): void {
  if (state.fingerprints.dataset !== e.datasetFingerprint) {
    throw new UnprocessableError(
      "the purification state belongs to another extra set (its dataset fingerprint differs): " +
        "send the same images and labels in every round",
      { expected: state.fingerprints.dataset, got: e.datasetFingerprint },
    );
  }
  if (state.fingerprints.current_model !== e.modelFingerprint) {
    const original = state.fingerprints.original_model === e.modelFingerprint;
    throw new UnprocessableError(
      original
        ? "the model sent is the original model, but this state continues from the model the " +
          "previous round returned: send that model with the state"
        : "the model sent is not the one the previous round returned (its weights fingerprint " +
          "differs): send the model and state of the same round's response",
      { expected: state.fingerprints.current_model, got: e.modelFingerprint },
    );
  }
  const d = state.dataset;
  const same = d.n === e.n && d.height === e.height && d.width === e.width &&
    d.channels === e.channels && d.num_classes === e.numClasses && d.params === e.params;
  if (!same) {
    throw new UnprocessableError(
      `the purification state describes ${d.n} images of ${d.height}×${d.width}×${d.channels}, ` +
        `${d.num_classes} classes and ${d.params} trainable parameters; the request has ${e.n} ` +
        `images of ${e.height}×${e.width}×${e.channels}, ${e.numClasses} classes and ` +
        `${e.params} parameters`,
    );
  }
}

/** Units of a scoring pass (infected logits at init, current logits at re-scoring). */
export function scoreUnits(schedule: Schedule, n: number): number {
  return Math.ceil(n / schedule.score_batch_size);
}

function checkCursor(state: PurifyState): void {
  const c = state.cursor;
  const stages = state.schedule.stages;
  const bad = (why: string) =>
    new ValidationError(`invalid purification state: cursor ${JSON.stringify(c)}: ${why}`);
  if (c.step > c.total) throw bad("step is beyond the phase's total");
  const probe = stages[c.stage];
  const attempts = probe?.kind === "train" && isMultiProbe(probe) ? probe.probe_lrs!.length : 1;
  if (c.attempt >= attempts) throw bad(`the stage has ${attempts} attempt(s)`);
  if ((attempts > 1 && c.phase !== "done" && c.phase !== "init") !== (state.probe !== null)) {
    throw bad("a multi-rate probe, and only one, carries probe state");
  }
  const units = scoreUnits(state.schedule, state.dataset.n);
  switch (c.phase) {
    case "init":
      if (c.stage !== 0 || c.total !== units || c.attempt !== 0) {
        throw bad(`init runs ${units} units at stage 0`);
      }
      if (c.step === c.total) throw bad("a finished init phase is never saved");
      return;
    case "evidence":
      if (c.stage !== 0 || c.attempt !== 0 || c.total < 1) {
        throw bad("evidence runs at least one unit at stage 0");
      }
      if (state.evidence === null) throw bad("an evidence phase needs evidence state");
      if (c.step === c.total) throw bad("a finished evidence phase is never saved");
      return;
    case "done":
      if (c.stage !== stages.length || c.step !== 0 || c.total !== 0 || c.attempt !== 0) {
        throw bad(`done is stage ${stages.length}, step 0, total 0`);
      }
      return;
    case "score": {
      const s = stages[c.stage];
      if (s === undefined || s.kind !== "train" || s.rescore === null) {
        throw bad("scoring only follows a train stage with rescore");
      }
      if (c.total !== units) throw bad(`a scoring pass runs ${units} units`);
      if (state.current_logits === null) throw bad("a scoring pass needs current_logits");
      if (s.revert && state.reference === null) throw bad("a probe's scoring needs reference");
      return;
    }
    case "stage": {
      const s = stages[c.stage];
      if (s === undefined) throw bad(`the schedule has ${stages.length} stages`);
      if (c.total < 1 || c.total > 10_000_000) throw bad("a stage runs at least one step");
      if (s.kind === "reconstruct") {
        if (c.total !== s.steps) throw bad(`stage '${s.name}' runs ${s.steps} steps`);
        if (state.trigger === null) throw bad("a reconstruct stage needs trigger");
      } else {
        if (s.steps !== undefined && c.total !== s.steps) {
          throw bad(`stage '${s.name}' runs ${s.steps} steps`);
        }
        if (s.losses.trigger > 0 && state.suspect?.class != null && state.trigger === null) {
          throw bad(`stage '${s.name}' stamps a reconstructed trigger but the state has none`);
        }
        if (s.losses.mean_teacher > 0 && state.teacher === null) {
          throw bad(`stage '${s.name}' needs teacher weights`);
        }
        if ((s.unlearn.anchor_l1 > 0 || s.revert) && state.reference === null) {
          throw bad(`stage '${s.name}' needs reference weights`);
        }
      }
      return;
    }
  }
}

function decodeState(state: PurifyState): RoundState {
  const { n, num_classes: k, params } = state.dataset;
  const { checksum: _checksum, reference_fixed: fixed, ...fields } = state;
  const infected = base64ToF32(state.infected_logits, n * k, "infected_logits");
  const current = state.current_logits === null
    ? null
    : base64ToF32(state.current_logits, n * k, "current_logits");
  const scores = state.scores === null ? null : base64ToF32(state.scores, n, "scores");
  const membership = base64ToU8(state.membership, n, FLAGGED, "membership");
  const probe = state.probe === null ? null : {
    ...state.probe,
    base_membership: base64ToU8(state.probe.base_membership, n, FLAGGED, "probe.base_membership"),
  };
  const relabel = state.relabel === null
    ? null
    : base64ToI32(state.relabel, n, -1, k - 1, "relabel");
  const flat = (b64: string | null, what: string) =>
    b64 === null ? null : base64ToF32(b64, params, what);
  const live: RoundState = {
    ...fields,
    infected_logits: infected,
    current_logits: current,
    scores,
    membership,
    probe,
    relabel,
    momentum: flat(state.momentum, "momentum"),
    teacher: flat(state.teacher, "teacher"),
    reference: flat(state.reference, "reference"),
    ...(fixed === undefined
      ? {}
      : { reference_fixed: base64ToF32(fixed, null, "reference_fixed") }),
    trigger: null,
    evidence: null,
    stamps: null,
  };
  const { height: h, width: w, channels: c } = state.dataset;
  const sus = state.suspect;
  if (sus !== null && [sus.class ?? 0, ...sus.classes].some((v) => v >= k)) {
    throw new ValidationError(
      `invalid purification state: suspect classes ${JSON.stringify(sus.classes)}; allowed ` +
        `0..${k - 1}`,
    );
  }
  const ev = state.evidence;
  if (ev !== null) {
    const perClass = [
      ev.landing_hits,
      ev.landing_sources,
      ev.patch_mask,
      ev.patch_success,
      ev.additive_success,
    ];
    if (perClass.some((a) => a.length !== k) || (ev.untargeted?.flips.length ?? k) !== k) {
      throw new ValidationError(
        `invalid purification state: evidence arrays need one entry per class (${k})`,
      );
    }
    const { patch_triggers, additive_deltas, untargeted_trigger, ...measures } = ev;
    live.evidence = {
      ...measures,
      arrays: {
        patchTriggers: base64ToF32(
          patch_triggers,
          k * stampSize("patch", h, w, c),
          "evidence.patch_triggers",
        ),
        additiveDeltas: base64ToF32(
          additive_deltas,
          k * stampSize("additive", h, w, c),
          "evidence.additive_deltas",
        ),
        untargetedTrigger: untargeted_trigger === null ? null : base64ToF32(
          untargeted_trigger,
          stampSize("patch", h, w, c),
          "evidence.untargeted_trigger",
        ),
      },
    };
  }
  if (state.stamps !== null) {
    const total = state.stamps.kinds.reduce((a, s) => a + stampSize(s.kind, h, w, c), 0);
    if (state.stamps.kinds.some((s) => s.target !== null && s.target >= k)) {
      throw new ValidationError(`invalid purification state: a stamp targets a class ≥ ${k}`);
    }
    live.stamps = {
      kinds: state.stamps.kinds,
      data: base64ToF32(state.stamps.data, total, "stamps.data"),
    };
  }
  const t = state.trigger;
  if (t !== null) {
    if (t.target >= k) {
      throw new ValidationError(
        `invalid purification state: trigger target ${t.target}; allowed 0..${k - 1}`,
      );
    }
    live.trigger = {
      target: t.target,
      mask_mean: t.mask_mean,
      success: t.success,
      arrays: {
        maskLogits: base64ToF32(t.mask_logits, h * w, "trigger.mask_logits"),
        maskM: base64ToF32(t.adam_mask_m, h * w, "trigger.adam_mask_m"),
        maskV: base64ToF32(t.adam_mask_v, h * w, "trigger.adam_mask_v"),
        patternLogits: base64ToF32(t.pattern_logits, h * w * c, "trigger.pattern_logits"),
        patternM: base64ToF32(t.adam_pattern_m, h * w * c, "trigger.adam_pattern_m"),
        patternV: base64ToF32(t.adam_pattern_v, h * w * c, "trigger.adam_pattern_v"),
        t: t.adam_t,
      },
    };
  }
  return live;
}

/** The wire form of `live` (every array base64 again), ready for {@link sealState}. */
export function encodeState(live: RoundState): Unsealed {
  const f32 = f32ToBase64;
  const orNull = <T>(a: T | null, enc: (a: T) => string) => (a === null ? null : enc(a));
  const { trigger: t, evidence: ev, stamps, probe } = live;
  return {
    ...live,
    infected_logits: f32(live.infected_logits),
    current_logits: orNull(live.current_logits, f32),
    scores: orNull(live.scores, f32),
    membership: bytesToBase64(live.membership),
    relabel: orNull(live.relabel, i32ToBase64),
    momentum: orNull(live.momentum, f32),
    teacher: orNull(live.teacher, f32),
    reference: orNull(live.reference, f32),
    // Absent, not null, when unused: states without batch norm keep their exact old form.
    reference_fixed: live.reference_fixed === undefined ? undefined : f32(live.reference_fixed),
    trigger: t && {
      target: t.target,
      mask_logits: f32(t.arrays.maskLogits),
      pattern_logits: f32(t.arrays.patternLogits),
      adam_mask_m: f32(t.arrays.maskM),
      adam_mask_v: f32(t.arrays.maskV),
      adam_pattern_m: f32(t.arrays.patternM),
      adam_pattern_v: f32(t.arrays.patternV),
      adam_t: t.arrays.t,
      mask_mean: t.mask_mean,
      success: t.success,
    },
    probe: probe && { ...probe, base_membership: bytesToBase64(probe.base_membership) },
    evidence: ev && (({ arrays, ...measures }) => ({
      ...measures,
      patch_triggers: f32(arrays.patchTriggers),
      additive_deltas: f32(arrays.additiveDeltas),
      untargeted_trigger: orNull(arrays.untargetedTrigger, f32),
    }))(ev),
    stamps: stamps && { kinds: stamps.kinds, data: f32(stamps.data) },
  };
}

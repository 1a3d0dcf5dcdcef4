/**
 * What a round reports happened, in order: the `events` of a round report (kept in the state's
 * history, at most 64 a round). In-process callers (the `pud` detector) read them through these
 * types; over HTTP they are the same JSON. Durations are `time_ms`, as in every other reply.
 *
 * @module
 */
import type { GroupSplit } from "./selection.ts";
import type { ClassEvidence, UntargetedEvidence } from "./target_evidence.ts";
import type { Stamp } from "./state.ts";

/** The suspects are decided and the first clean set chosen. */
export type StartEvent = {
  event: "start";
  suspect_class: number | null;
  suspect_classes: number[];
  all_to_all: boolean;
  label_consistent: boolean;
  label_counts: number[];
  label_excess: number;
  clean_set: number;
  /** Per-class evidence of the evidence phase, when it ran. */
  evidence?: ClassEvidence[];
  untargeted?: UntargetedEvidence;
  /** The evidence phase's triggers the train stages stamp. */
  stamps?: Stamp[];
};

/** A stage was skipped. */
export type SkipEvent = {
  event: "skip";
  stage: string;
  reason: string;
};

/** A stage's last unit ran. */
export type StageEndEvent = {
  event: "stage_end";
  stage: string;
  /** Work time of the stage, summed over rounds. */
  time_ms: number;
  /** A reconstruct stage's trigger as it ended. */
  trigger?: { target: number; mask_mean: number | null; success: number | null };
};

/** Ground-truth figures of a re-selection, when the caller sent which images are poisoned. */
export type RescoreDetection = {
  auroc: number | null;
  precision: number;
  recall: number;
  poison_in_clean_set: number;
};

/** A scoring pass ended and the clean set and flags were re-selected. */
export type RescoreEvent = {
  event: "rescore";
  stage: string;
  /** A multi-rate probe's attempt, its learning rate and whether its split was adopted. */
  attempt?: number;
  lr?: number;
  adopted?: boolean;
  score: string;
  threshold: number | null;
  separation: number | null;
  bimodal: boolean;
  groups?: GroupSplit[];
  newly_flagged: number;
  flagged: number;
  clean_set: number;
  detection?: RescoreDetection;
};

/** A probe's weights were restored. */
export type RevertEvent = {
  event: "revert";
  stage: string;
};

/** A multi-rate probe chose the attempt with the cleanest split. */
export type ProbeChoiceEvent = {
  event: "probe_choice";
  stage: string;
  attempt: number | null;
  lr: number;
  separation: number | null;
};

/** Diagnostics of the model after a stage (and before the first), when the caller asked. */
export type EvaluationEvent = {
  event: "evaluation";
  stage: string;
  clean_accuracy: number | null;
  asr: number | null;
  robust_accuracy: number | null;
  per_class_accuracy: (number | null)[];
  time_ms: number;
};

export type RoundEvent =
  | StartEvent
  | SkipEvent
  | StageEndEvent
  | RescoreEvent
  | RevertEvent
  | ProbeChoiceEvent
  | EvaluationEvent;

/** The first event of `kind` in `events`, typed. */
export function findEvent<K extends RoundEvent["event"]>(
  events: readonly RoundEvent[],
  kind: K,
): Extract<RoundEvent, { event: K }> | undefined {
  return events.find((e): e is Extract<RoundEvent, { event: K }> => e.event === kind);
}

/** Rounds a reported figure to 4 decimals (events and reports carry no float noise). */
export function round4(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

/** {@link round4}, passing null through. */
export function roundOrNull(v: number | null): number | null {
  return v === null ? null : round4(v);
}

/**
 * Re-scoring after a train stage: the stage's rescore rule applied to the suspicion of every image
 * (infected logits against the current model's), the re-selected clean set and flags, and the
 * `rescore` event that reports them, with ground-truth detection figures when the caller sent
 * which images are poisoned. A multi-rate probe adopts an attempt's split only when it separates
 * better than the best attempt so far. Pure: the round applies the outcome to its state.
 *
 * @module
 */
import { auroc, flagMetrics } from "../metrics/detection.ts";
import { type RescoreEvent, round4, roundOrNull } from "./events.ts";
import { isMultiProbe, type TrainStage } from "./schedule.ts";
import { reselect, type Reselection, scopedSuspicion, suspicion } from "./selection.ts";
import { CLEAN, FLAGGED } from "./state.ts";

export interface RescoreInput {
  stage: TrainStage;
  /** Which of a probe's learning rates ran (0 otherwise). */
  attempt: number;
  /** `[N, K]` logits of the infected model and of the model after the stage. */
  infected: Float32Array;
  current: Float32Array;
  labels: Int32Array;
  numClasses: number;
  /** Suspected classes the rule ranks within (every class when all-to-all is suspected). */
  suspects: readonly number[];
  /** The membership the re-selection starts from (a probe's starting one for every attempt). */
  base: Uint8Array;
  /** A multi-rate probe's best separation so far (null before its first attempt). */
  bestSeparation: number | null;
  /** Ground truth of the extra set (1 = poisoned), for the event's detection figures. */
  poisoned?: Uint8Array;
}

export interface RescoreOutcome {
  /** Whether the round takes this split (always, but for a probe's attempt that did worse). */
  adopt: boolean;
  selection: Reselection;
  /** Per-image suspicion within the rule's scope (higher = more suspicious). */
  scores: Float32Array;
  event: RescoreEvent;
}

/** Re-selects the clean set and flags after `input.stage`'s scoring pass. */
export function rescore(input: RescoreInput): RescoreOutcome {
  const { stage, attempt, infected, current: z, labels, numClasses: k, suspects } = input;
  const rule = stage.rescore!;
  const multi = isMultiProbe(stage);
  const u = suspicion(rule.score, infected, z, labels, k, suspects);
  const r = reselect(rule, u, infected, z, labels, input.base, k, suspects);
  const sep = r.separation ?? 0;
  const adopt = !multi || input.bestSeparation === null || sep > input.bestSeparation;
  const scores = scopedSuspicion(u, labels, rule, suspects);
  const n = labels.length;
  const event: RescoreEvent = {
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
    flagged: r.membership.reduce((c, m) => c + (m === FLAGGED ? 1 : 0), 0),
    clean_set: r.membership.reduce((c, m) => c + (m === CLEAN ? 1 : 0), 0),
  };
  const truth = input.poisoned;
  if (truth && truth.length === n) {
    const flags = Uint8Array.from(r.membership, (v) => (v === FLAGGED ? 1 : 0));
    const f = flagMetrics(flags, truth);
    let poisonInClean = 0;
    for (let i = 0; i < n; i++) if (truth[i] && r.membership[i] === CLEAN) poisonInClean++;
    event.detection = {
      auroc: roundOrNull(auroc(scores, truth)),
      precision: round4(f.precision),
      recall: round4(f.recall),
      poison_in_clean_set: poisonInClean,
    };
  }
  return { adopt, selection: r, scores, event };
}

/**
 * What a purification report holds, as `report.json` stores it: figures, settings and timings,
 * never image bytes (the HTML page embeds those; see `report_html.ts`).
 */

/** Figures measured on one model: the infected one (round 0) or a round's output. */
export interface RoundPoint {
  round: number;
  stage?: number | string;
  clean_accuracy?: number;
  attack_success_rate?: number;
  robust_accuracy?: number;
  /**
   * The lowest robust accuracy the evaluation measured: the ensemble's worst case per image, or
   * PGD's figure after its Square check. Purification is judged on it.
   */
  worst_case_robust_accuracy?: number;
  /** The ensemble only: robust accuracy after each member, in the order they ran. */
  robust_members?: { member: string; robust_accuracy: number }[];
  /** The evaluation's gradient-masking check fired. */
  gradient_masking_suspected?: boolean;
  /** The robust-accuracy attack in words, e.g. "PGD-20 L-inf 8/255", "autoattack fast L-inf 8/255". */
  robust_attack?: string;
  /** Wall seconds of the round's request (absent for round 0). */
  seconds?: number;
  /** Wall seconds of the round's evaluation. */
  eval_seconds?: number;
}

/** One image the detector flagged. */
export interface FlaggedImage {
  index: number;
  score: number;
  /** Its label in the extra set as given: possibly the poisoned one, not the true class. */
  label: number;
  /** Ground truth, when it was given. */
  poisoned?: boolean;
}

/** The detection step (`POST /v1/detect` with the infected model on the extra set). */
export interface DetectionSection {
  method: string;
  params: Record<string, unknown>;
  n: number;
  flagged: number;
  suspected_target: number | null;
  threshold?: unknown;
  /** With ground truth. */
  metrics?: {
    precision?: number;
    recall?: number;
    f1?: number;
    auroc?: number;
    tp?: number;
    fp?: number;
    fn?: number;
    tn?: number;
  };
  roc: { fpr: number; tpr: number }[];
  /** The flagged images, highest score first (at most `FLAGGED_SHOWN`). */
  flagged_images: FlaggedImage[];
  seconds: number;
}

/** A model's answer on a sample image. */
export interface SamplePrediction {
  before?: number;
  after?: number;
}

/** One column of the sample grid. */
export interface SampleItem {
  /** Index in test_x.npy. */
  index: number;
  label: number;
  clean: SamplePrediction;
  /** Index in test_bd_x.npy and the attacker's class, when the image has a triggered twin. */
  triggered?: SamplePrediction & { bd_index: number; target: number };
  /** PGD against the infected model (before) and against the purified model (after). */
  adversarial: SamplePrediction;
}

export interface SamplesSection {
  attack: Record<string, unknown>;
  items: SampleItem[];
  seconds: number;
}

/** Precision and recall of a set of flagged indices against ground truth. */
export interface FlagScore {
  flagged: number;
  precision: number | null;
  recall: number | null;
}

export interface ReportData {
  title: string;
  /** ISO time the report was written. */
  created: string;
  server: string;
  backend?: string;
  version?: string;
  /** Files and data the run was given (and, for the demo, how they were made). */
  inputs: Record<string, unknown>;
  /** Purification params and the options of every step. */
  settings: Record<string, unknown>;
  summary: {
    rounds: number;
    done: boolean;
    before?: RoundPoint;
    after?: RoundPoint;
    /** Images purification flagged as poisoned, scored against ground truth when given. */
    purification_flags: FlagScore | { flagged: number };
  };
  points: RoundPoint[];
  detection?: DetectionSection;
  samples?: SamplesSection;
  /** Class names by index, when known (the lab's lab.json). */
  class_names?: string[];
  /** Wall seconds per phase. */
  timings: Record<string, number>;
  /** What the report could not show, and why. */
  notes?: string[];
  /** The last round's report as the server sent it. */
  last: Record<string, unknown>;
}

/** How many flagged images the report lists (highest scores first). */
export const FLAGGED_SHOWN = 48;

/** Scores `flagged` indices against ground truth (1 = poisoned); null where undefined (0/0). */
export function flagScore(flagged: number[], isPoison?: ArrayLike<number>): FlagScore {
  if (!isPoison) return { flagged: flagged.length, precision: null, recall: null };
  let tp = 0, pos = 0;
  for (let i = 0; i < isPoison.length; i++) if (isPoison[i]) pos++;
  for (const i of flagged) if (isPoison[i]) tp++;
  return {
    flagged: flagged.length,
    precision: flagged.length ? tp / flagged.length : null,
    recall: pos ? tp / pos : null,
  };
}

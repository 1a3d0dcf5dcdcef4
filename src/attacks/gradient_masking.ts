/**
 * The gradient-masking check every robust-accuracy report carries. A model can look robust to
 * gradient attacks by flattening, saturating or shattering its input gradients while staying easy
 * to break (Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML
 * 2018; the checklist of Carlini et al., "On Evaluating Adversarial Robustness", 2019). Three
 * symptoms are checked, each from figures measured on the same images:
 *
 * - a black-box attack (Square, which reads no gradient) breaks images the white-box attacks failed
 *   on: more than {@link BLACK_BOX_SHARE} of all images and at least {@link BLACK_BOX_MIN} (one
 *   borderline image that a 5000-query search finds and 100 gradient steps missed is not a
 *   symptom);
 * - robust accuracy *falls* when the attack gets fewer steps (more steps should never help the
 *   model), by more than {@link SWEEP_TOLERANCE};
 * - robust accuracy *rises* with a larger eps (every adversarial example within eps is also one
 *   within a larger eps), by more than {@link SWEEP_TOLERANCE}.
 *
 * @module
 */

/** Share of all images broken only by the black-box attack above which masking is suspected. */
export const BLACK_BOX_SHARE = 0.02;
/** Fewest images broken only by the black-box attack that count as a symptom. */
export const BLACK_BOX_MIN = 2;
/** Robust-accuracy difference the random starts can explain in a steps or eps sweep. */
export const SWEEP_TOLERANCE = 0.02;

/** One point of a sweep: the attack's setting and the robust accuracy it measured. */
export interface SweepPoint {
  steps: number;
  eps: number;
  robust_accuracy: number;
}

export interface MaskingFigures {
  /** Images the check covers. */
  n: number;
  /** Robust accuracy after the white-box attacks only; null when none ran. */
  white_box_robust_accuracy: number | null;
  /** Robust accuracy after every attack, the black-box one included. */
  worst_case_robust_accuracy: number | null;
  /** Images only the black-box attack broke; null when it did not run. */
  black_box_only: number | null;
  /** The same as a share of `n`. */
  black_box_only_share: number | null;
  /** The main attack and the same attack with fewer steps (null when not measured). */
  steps_sweep: SweepPoint[] | null;
  /** The main attack and the same attack at a larger eps (null when not measured). */
  eps_sweep: SweepPoint[] | null;
}

export interface MaskingCheck {
  gradient_masking_suspected: boolean;
  /** Each symptom found, with its figures; empty when none. */
  reasons: string[];
  figures: MaskingFigures;
  thresholds: { black_box_share: number; black_box_min: number; sweep_tolerance: number };
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** Applies the three rules of the module doc to `f`. */
export function checkMasking(f: MaskingFigures): MaskingCheck {
  const reasons: string[] = [];
  if (
    f.black_box_only !== null && f.black_box_only_share !== null &&
    f.black_box_only_share > BLACK_BOX_SHARE && f.black_box_only >= BLACK_BOX_MIN
  ) {
    reasons.push(
      `the black-box attack broke ${f.black_box_only} of ${f.n} images ` +
        `(${pct(f.black_box_only_share)}) that the white-box attacks failed on: robust ` +
        `accuracy ${pct(f.white_box_robust_accuracy ?? NaN)} white-box, ` +
        `${pct(f.worst_case_robust_accuracy ?? NaN)} worst case`,
    );
  }
  const sweep = (points: SweepPoint[] | null, key: "steps" | "eps") => {
    if (!points || points.length < 2) return;
    const sorted = [...points].sort((a, b) => a[key] - b[key]);
    for (let i = 1; i < sorted.length; i++) {
      const [lo, hi] = [sorted[i - 1], sorted[i]];
      const show = (p: SweepPoint) =>
        key === "steps" ? `${p.steps} steps` : `eps ${p.eps.toPrecision(4)}`;
      const wrong = key === "steps"
        ? lo.robust_accuracy < hi.robust_accuracy - SWEEP_TOLERANCE
        : hi.robust_accuracy > lo.robust_accuracy + SWEEP_TOLERANCE;
      if (wrong) {
        reasons.push(
          `robust accuracy ${
            key === "steps" ? "falls with fewer steps" : "rises with larger eps"
          }: ` +
            `${pct(lo.robust_accuracy)} at ${show(lo)}, ${pct(hi.robust_accuracy)} at ${show(hi)}`,
        );
      }
    }
  };
  sweep(f.steps_sweep, "steps");
  sweep(f.eps_sweep, "eps");
  return {
    gradient_masking_suspected: reasons.length > 0,
    reasons,
    figures: f,
    thresholds: {
      black_box_share: BLACK_BOX_SHARE,
      black_box_min: BLACK_BOX_MIN,
      sweep_tolerance: SWEEP_TOLERANCE,
    },
  };
}

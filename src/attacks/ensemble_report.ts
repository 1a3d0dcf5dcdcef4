/**
 * The ensemble's figures over a whole request, summed over batches: per member the images it ran
 * on and broke, robust accuracy after it (cumulative), the worst case per image, and the
 * gradient-masking check from the images only the black-box member broke.
 */
import { checkMasking, type MaskingCheck } from "./gradient_masking.ts";
import { BLACK_BOX, type Member, type MemberOutcome } from "./autoattack.ts";

/** One ensemble member's figures over the whole request. */
export interface MemberReport {
  member: Member;
  /** Whether it reads only scores (Square) or gradients. */
  black_box: boolean;
  /** Images it ran on: those every earlier member left correct. */
  attacked: number;
  /** Images it broke first. */
  broken: number;
  /** Share of all images still correct after this member (and every earlier one). */
  robust_accuracy: number;
  /** Gradient evaluations (APGD members) or forward passes (Square). */
  queries: number;
  time_ms: number;
}

/** Robust accuracy after each member, the worst case and the masking check. */
export interface EnsembleReport {
  members: MemberReport[];
  /** Share of images no member broke (and correct before the attack): the worst case per image. */
  worst_case_robust_accuracy: number;
  gradient_masking: MaskingCheck;
}

/** Sums one batch's member outcomes into `into` (by member, in the order first seen). */
export function addOutcomes(into: Map<Member, MemberReport>, outcomes: MemberOutcome[]): void {
  for (const o of outcomes) {
    const m = into.get(o.member) ?? {
      member: o.member,
      black_box: BLACK_BOX[o.member],
      attacked: 0,
      broken: 0,
      robust_accuracy: 0,
      queries: 0,
      time_ms: 0,
    };
    m.attacked += o.attacked;
    m.broken += o.broken;
    m.queries += o.queries;
    m.time_ms += o.time_ms;
    into.set(o.member, m);
  }
}

/**
 * Fills in each member's cumulative robust accuracy (`clean` correct images minus those broken so
 * far, over `n`) and checks for masking: the images only the black-box member broke.
 */
export function ensembleReport(members: MemberReport[], clean: number, n: number): EnsembleReport {
  let robust = clean, whiteBox: number | null = null, blackOnly: number | null = null;
  for (const m of members) {
    robust -= m.broken;
    m.robust_accuracy = robust / n;
    if (m.black_box) blackOnly = (blackOnly ?? 0) + m.broken;
    else whiteBox = robust;
  }
  const ranWhite = members.some((m) => !m.black_box);
  return {
    members,
    worst_case_robust_accuracy: robust / n,
    gradient_masking: checkMasking({
      n,
      white_box_robust_accuracy: ranWhite ? (whiteBox ?? clean) / n : null,
      worst_case_robust_accuracy: robust / n,
      black_box_only: ranWhite ? blackOnly : null,
      black_box_only_share: ranWhite && blackOnly !== null ? blackOnly / n : null,
      steps_sweep: null,
      eps_sweep: null,
    }),
  };
}

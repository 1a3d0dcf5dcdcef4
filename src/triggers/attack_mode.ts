/**
 * How a backdoor relabels triggered images. All-to-one sends every triggered image to one target
 * class; all-to-all sends class `y` to `(y + 1) mod K` (Gu et al., "BadNets", 2017, Section 4).
 *
 * @module
 */
import { z } from "zod";

export const AttackModeSchema = z.enum(["all-to-one", "all-to-all"]).describe(
  "all-to-one: every triggered image is labelled target; all-to-all: label y becomes (y+1) mod K",
);
export type AttackMode = z.output<typeof AttackModeSchema>;

/** The label a triggered image of class `label` carries under `mode`. */
export function backdoorLabel(
  label: number,
  mode: AttackMode,
  target: number,
  numClasses: number,
): number {
  return mode === "all-to-one" ? target : (label + 1) % numClasses;
}

/**
 * Whether an image of class `label` can carry the backdoor: in all-to-one mode images already of
 * the target class cannot (their label would not change, and counting them would inflate the
 * attack success rate); in all-to-all mode every image can.
 */
export function canPoison(label: number, mode: AttackMode, target: number): boolean {
  return mode === "all-to-all" || label !== target;
}

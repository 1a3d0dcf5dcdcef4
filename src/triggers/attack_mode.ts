/**
 * How a backdoor picks and relabels its poisoned images. All-to-one sends every triggered image
 * to one target class; all-to-all sends class `y` to `(y + 1) mod K` (Gu et al., "BadNets", 2017,
 * Section 4); clean-label triggers images that already belong to the target class and keeps their
 * labels (Barni et al., ICIP 2019; Turner, Tsipras & Madry, "Label-Consistent Backdoor Attacks",
 * 2019), so no label in the poisoned set is wrong and no class is over-represented.
 *
 * @module
 */
import { z } from "zod";

export const AttackModeSchema = z.enum(["all-to-one", "all-to-all", "clean-label"]).describe(
  "all-to-one: every triggered image is labelled target; all-to-all: label y becomes (y+1) mod " +
    "K; clean-label: only images of the target class are triggered and keep their label",
);
export type AttackMode = z.output<typeof AttackModeSchema>;

/** The label a triggered image of class `label` carries under `mode` (in the data or at test). */
export function backdoorLabel(
  label: number,
  mode: AttackMode,
  target: number,
  numClasses: number,
): number {
  return mode === "all-to-all" ? (label + 1) % numClasses : target;
}

/**
 * Whether a training (or extra-set) image of class `label` is poisoned under `mode`: all-to-one
 * poisons images not already of the target class (their label would not change), clean-label
 * only images of the target class, all-to-all every image.
 */
export function canPoison(label: number, mode: AttackMode, target: number): boolean {
  if (mode === "all-to-all") return true;
  return mode === "clean-label" ? label === target : label !== target;
}

/**
 * Whether a test image of class `label` measures the attack: every image whose label differs from
 * the one the trigger should produce (for all-to-one and clean-label, the non-target images).
 */
export function measuresAttack(label: number, mode: AttackMode, target: number): boolean {
  return mode === "all-to-all" || label !== target;
}

/**
 * Data poisoning for the backdoor lab: stamp a trigger on a seeded fraction of the images and
 * relabel them per the attack mode (Gu et al., "BadNets", 2017; Chen et al., 2017). The poisoned
 * images are rounded back to 8 bits, exactly what a user's dirty dataset would hold.
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import {
  type AttackMode,
  backdoorLabel,
  canPoison,
  measuresAttack,
} from "../triggers/attack_mode.ts";
import { applyTrigger, type TriggerSpec } from "../triggers/trigger.ts";
import { type Dataset, imageSize, subset, toBytes, toUnit } from "./dataset.ts";
import { Rng } from "../random/rng.ts";

/** Images triggered per call of the trigger, bounding the float copy held at once. */
const CHUNK = 1024;

export interface PoisonOptions {
  trigger: TriggerSpec;
  mode: AttackMode;
  /** Target class of an all-to-one attack (ignored by all-to-all). */
  target: number;
  /** Fraction of the whole set to poison, in [0, 1]: `round(rate·N)` images. */
  rate: number;
  seed: number;
}

export interface PoisonedDataset extends Dataset {
  /** 1 where the image was triggered and relabelled. */
  isPoison: Uint8Array;
  /** The labels before poisoning. */
  cleanY: Int32Array;
  /** The poisoned indices, ascending. */
  poisonIndices: Int32Array;
}

/** Stamps `spec` on every image of `d` (8-bit in, 8-bit out). */
export function triggerImages(d: Dataset, spec: TriggerSpec): Uint8Array {
  const size = imageSize(d);
  const n = d.shape[0];
  const out = new Uint8Array(d.x.length);
  for (let s = 0; s < n; s += CHUNK) {
    const m = Math.min(CHUNK, n - s);
    const batch = toUnit(d.x.subarray(s * size, (s + m) * size));
    const stamped = applyTrigger(spec, {
      data: batch,
      shape: [m, d.shape[1], d.shape[2], d.shape[3]],
    });
    out.set(toBytes(stamped), s * size);
  }
  return out;
}

function checkTarget(mode: AttackMode, target: number, numClasses: number): void {
  if (mode !== "all-to-all" && !(Number.isInteger(target) && target >= 0 && target < numClasses)) {
    throw new ValidationError(`target must be a class in [0, ${numClasses - 1}]; got ${target}`);
  }
}

/**
 * Poisons `round(rate·N)` images of `d` chosen uniformly (seeded) among those that can carry the
 * backdoor (all-to-one: images not already of the target class; clean-label: images of the target
 * class, whose labels stay as they are; all-to-all: any image).
 *
 * @throws {ValidationError} `rate` is outside [0, 1], the target is not a class, or there are
 *   fewer eligible images than the rate asks for.
 */
export function poisonDataset(d: Dataset, opts: PoisonOptions): PoisonedDataset {
  const { mode, target, rate } = opts;
  if (!(rate >= 0 && rate <= 1)) {
    throw new ValidationError(`poison rate must be in [0, 1]; got ${rate}`);
  }
  checkTarget(mode, target, d.numClasses);
  const n = d.y.length;
  const count = Math.round(rate * n);
  const eligible: number[] = [];
  for (let i = 0; i < n; i++) if (canPoison(d.y[i], mode, target)) eligible.push(i);
  if (count > eligible.length) {
    const which = mode === "clean-label" ? "of" : "not of";
    throw new ValidationError(
      `poison rate ${rate} asks for ${count} of ${n} images but only ${eligible.length} are ` +
        `${which} the target class ${target}`,
    );
  }
  const picked = new Rng(opts.seed, 0x901).sample(eligible, count).sort();
  const x = d.x.slice();
  const y = d.y.slice();
  const isPoison = new Uint8Array(n);
  const stamped = triggerImages(subset(d, picked), opts.trigger);
  const size = imageSize(d);
  for (let i = 0; i < picked.length; i++) {
    const k = picked[i];
    x.set(stamped.subarray(i * size, (i + 1) * size), k * size);
    y[k] = backdoorLabel(d.y[k], mode, target, d.numClasses);
    isPoison[k] = 1;
  }
  return {
    x,
    y,
    shape: [...d.shape],
    numClasses: d.numClasses,
    isPoison,
    cleanY: d.y.slice(),
    poisonIndices: picked,
  };
}

/**
 * The backdoor test set: every image of `test` whose label differs from the attacker's class for
 * it, triggered, labelled with that class. Attack success rate = accuracy on this set.
 */
export function backdoorTestSet(
  test: Dataset,
  spec: TriggerSpec,
  mode: AttackMode,
  target: number,
): Dataset & { sourceIndices: Int32Array } {
  checkTarget(mode, target, test.numClasses);
  const keep: number[] = [];
  for (let i = 0; i < test.y.length; i++) if (measuresAttack(test.y[i], mode, target)) keep.push(i);
  const sourceIndices = Int32Array.from(keep);
  const src = subset(test, sourceIndices);
  const y = src.y.map((l) => backdoorLabel(l, mode, target, test.numClasses));
  return { ...src, x: triggerImages(src, spec), y, sourceIndices };
}

/**
 * The triggers train stages stamp onto clean images with their true labels, as
 * `(1 − m)·x + m·p + δ` parts: the reconstructed trigger (live: a later reconstruct stage may
 * still change it, so its parts are made afresh each step) and the evidence phase's stamps kept in
 * the state (made once), less the patch the reconstructed trigger refines.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type RoundState, stampSize } from "./state.ts";
import type { TriggerVars } from "./trigger_reconstruction.ts";

/** One stamp as mask, pattern and additive parts (`[H, W, 1]`, `[H, W, C]`, `[H, W, C]`). */
export type StampParts = { mask: tf.Tensor3D; pattern: tf.Tensor3D; delta: tf.Tensor3D };

type Kept = Pick<RoundState, "stamps" | "dataset">;

/** The evidence phase's stamps as kept in the state, each with its slice of the data. */
function* stampEntries(st: Kept): Generator<
  { kind: "patch" | "additive"; target: number | null; d: Float32Array }
> {
  if (!st.stamps) return;
  const { height: h, width: w, channels: c } = st.dataset;
  let off = 0;
  for (const s of st.stamps.kinds) {
    const size = stampSize(s.kind, h, w, c);
    yield { ...s, d: st.stamps.data.subarray(off, off + size) };
    off += size;
  }
}

/** The evidence phase's stamp data of `kind` towards `target`, if the state keeps one. */
export function stampData(
  st: Kept,
  kind: "patch" | "additive",
  target: number | null,
): Float32Array | undefined {
  for (const s of stampEntries(st)) if (s.kind === kind && s.target === target) return s.d;
  return undefined;
}

/** The stamp tensors of a round: the kept stamps' once, the live trigger's per step. */
export class Stamps {
  #kept: StampParts[] | undefined;
  #live: StampParts[] = [];

  /** Every trigger to stamp in this step; `trigger` is the reconstructed one, if any. */
  forStep(st: RoundState, trigger: TriggerVars | undefined): StampParts[] {
    const { height: h, width: w, channels: c } = st.dataset;
    if (this.#kept === undefined) {
      const out: StampParts[] = [];
      const refined = st.trigger?.target ?? null;
      for (const { d, ...s } of stampEntries(st)) {
        if (s.kind === "patch" && trigger && s.target === refined) continue;
        out.push(tf.tidy(() =>
          s.kind === "patch"
            ? {
              mask: tf.sigmoid(tf.tensor3d(d.subarray(0, h * w), [h, w, 1])) as tf.Tensor3D,
              pattern: tf.sigmoid(tf.tensor3d(d.subarray(h * w), [h, w, c])) as tf.Tensor3D,
              delta: tf.zeros([h, w, c]) as tf.Tensor3D,
            }
            : {
              mask: tf.zeros([h, w, 1]) as tf.Tensor3D,
              pattern: tf.zeros([h, w, c]) as tf.Tensor3D,
              delta: tf.tensor3d(d, [h, w, c]),
            }
        ));
      }
      this.#kept = out;
    }
    if (!trigger) return this.#kept;
    const live = tf.tidy(() => ({
      mask: tf.sigmoid(trigger.maskLogits) as tf.Tensor3D,
      pattern: tf.sigmoid(trigger.patternLogits) as tf.Tensor3D,
      delta: tf.zeros([h, w, c]) as tf.Tensor3D,
    }));
    this.#live.push(live);
    return [live, ...this.#kept];
  }

  /** Frees the live trigger's parts made for the step that just ran. */
  endStep(): void {
    for (const l of this.#live.splice(0)) tf.dispose([l.mask, l.pattern, l.delta]);
  }

  /** Frees the kept stamps' tensors (a new reconstruct stage changes which patch is left out). */
  reset(): void {
    for (const s of this.#kept ?? []) tf.dispose([s.mask, s.pattern, s.delta]);
    this.#kept = undefined;
  }

  dispose(): void {
    this.endStep();
    this.reset();
  }
}

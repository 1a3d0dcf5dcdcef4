/**
 * SGD with momentum and L2 weight decay, written out rather than taken from `tf.train`: tfjs
 * optimizers keep their momentum in private slot variables, while a round must hand its momentum
 * buffer to the next round for a resumed run to match an uninterrupted one. The update is
 * PyTorch's (`torch.optim.SGD`, dampening 0, no Nesterov), the optimizer the published code uses:
 *
 *   d = g + wd·θ;  b ← μ·b + d;  θ ← θ − lr·b
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { flatWeights, unflatten } from "./weights.ts";

export class MomentumSgd {
  readonly #vars: tf.Variable[];
  readonly #buffers: tf.Variable[];

  /** Buffers start at zero, or at `initial` (the flat vector a previous round saved). */
  constructor(vars: tf.Variable[], initial?: Float32Array | null) {
    this.#vars = vars;
    if (initial) {
      const ts = unflatten(vars, initial);
      this.#buffers = ts.map((t) => tf.variable(t, false));
      tf.dispose(ts);
    } else {
      this.#buffers = vars.map((v) => tf.tidy(() => tf.variable(tf.zerosLike(v), false)));
    }
  }

  /** One update from gradients aligned with the variables. */
  step(grads: tf.Tensor[], lr: number, momentum: number, weightDecay: number): void {
    tf.tidy(() => {
      for (let i = 0; i < this.#vars.length; i++) {
        const v = this.#vars[i];
        const b = this.#buffers[i];
        const d = weightDecay > 0 ? tf.add(grads[i], tf.mul(v, weightDecay)) : grads[i];
        const nb = momentum > 0 ? tf.add(tf.mul(b, momentum), d) : d;
        b.assign(nb);
        v.assign(tf.sub(v, tf.mul(nb, lr)));
      }
    });
  }

  /** The momentum buffer as one vector, for the round state. */
  export(): Promise<Float32Array> {
    return flatWeights(this.#buffers);
  }

  dispose(): void {
    tf.dispose(this.#buffers);
  }
}

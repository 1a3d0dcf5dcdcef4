/**
 * No NaN or infinity behind a 200. A classifier is wrapped so that every forward pass adds
 * `sum(y - y)` of its logits to one running scalar (0 while every logit is finite, NaN from the
 * first that is not); the op reads that scalar once, asynchronously, before it replies. Outputs
 * that reach the reply (reports, scores, adversarial images, trained weights) are checked too.
 */
import * as tf from "@tensorflow/tfjs";
import { NonFiniteError } from "../errors.ts";
import type { BundleFile } from "../io/model_bundle.ts";
import type { LoadedClassifier } from "../model/load_classifier.ts";
import { concatBytes } from "../io/bytes.ts";

/** Watches the logits of the classifiers it wraps. */
export class FiniteGuard {
  #probe: tf.Scalar | undefined;

  /** `clf` whose `logits` feed the guard; everything else is `clf`'s own. */
  wrap(clf: LoadedClassifier): LoadedClassifier {
    const wrapped = Object.create(clf) as LoadedClassifier;
    const observe = (y: tf.Tensor2D) => this.#observe(y);
    wrapped.logits = (x, training) => {
      const y = clf.logits(x, training);
      observe(y);
      return y;
    };
    return wrapped;
  }

  #observe(y: tf.Tensor): void {
    const prev = this.#probe;
    const next = tf.tidy(() => {
      const s = tf.sum(tf.sub(y, y)) as tf.Scalar;
      return prev ? tf.add(prev, s) as tf.Scalar : s;
    });
    // Kept out of any enclosing tidy (the attack's or the train step's); freed by check/dispose.
    tf.keep(next);
    prev?.dispose();
    this.#probe = next;
  }

  /** Throws {@link NonFiniteError} when any logit seen so far was NaN or infinite. */
  async check(): Promise<void> {
    const probe = this.#probe;
    this.#probe = undefined;
    if (!probe) return;
    const [v] = await probe.data();
    probe.dispose();
    if (!Number.isFinite(v)) throw new NonFiniteError("the model's logits");
  }

  dispose(): void {
    this.#probe?.dispose();
    this.#probe = undefined;
  }
}

/** Throws {@link NonFiniteError} naming the first NaN or infinite number of a JSON value. */
export function assertFiniteJson(value: unknown, where: string): void {
  const stack: [unknown, string][] = [[value, where]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new NonFiniteError(path, { value: String(v) });
    } else if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
      assertFiniteArray(v as unknown as ArrayLike<number>, path);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`]);
    } else if (typeof v === "object" && v !== null) {
      for (const [k, x] of Object.entries(v)) stack.push([x, `${path}.${k}`]);
    }
  }
}

/** Throws {@link NonFiniteError} at the first NaN or infinite element of `a`. */
export function assertFiniteArray(a: ArrayLike<number>, where: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) {
      throw new NonFiniteError(`${where}[${i}]`, { index: i, value: String(a[i]) });
    }
  }
}

interface WeightSpec {
  name: string;
  shape: number[];
  dtype?: string;
}

/**
 * Checks a saved bundle's float32 weights; the error names the weight. Specs are read from the
 * saved `model.json`, whose one manifest group maps onto the concatenated shards in order.
 */
export function assertFiniteWeights(saved: { modelJson: Uint8Array; weights: BundleFile[] }) {
  const doc = JSON.parse(new TextDecoder().decode(saved.modelJson)) as {
    weightsManifest: { weights: WeightSpec[] }[];
  };
  const specs = doc.weightsManifest.flatMap((g) => g.weights);
  const one = saved.weights.length === 1 && saved.weights[0].bytes.byteOffset % 4 === 0;
  const bytes = one ? saved.weights[0].bytes : concatBytes(saved.weights.map((w) => w.bytes));
  let offset = bytes.byteOffset;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if ((s.dtype ?? "float32") === "float32") {
      const view = new Float32Array(bytes.buffer, offset, n);
      for (let i = 0; i < n; i++) {
        if (!Number.isFinite(view[i])) {
          throw new NonFiniteError(`the trained weight '${s.name}'`, {
            weight: s.name,
            index: i,
            value: String(view[i]),
          });
        }
      }
    }
    offset += n * 4;
  }
}

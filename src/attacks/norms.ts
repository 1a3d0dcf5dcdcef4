/** Per-sample norms of `[N, H, W, C]` tensors, and the reshape that broadcasts `[N]` over images. */
import * as tf from "@tensorflow/tfjs";

/**
 * Per-sample L2 norm `[N]`. Sums rows first, then the row sums, which keeps float32 rounding of
 * the sum of squares near `(W·C + H)·2⁻²⁴` rather than `H·W·C·2⁻²⁴` for a single long sum.
 */
export function l2Norms(t: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => {
    const [n, h, w, c] = t.shape;
    const sq = tf.square(tf.reshape(t, [n, h, w * c]));
    return tf.sqrt(tf.sum(tf.sum(sq, 2), 1)) as tf.Tensor1D;
  });
}

/** Per-sample L1 norm `[N]`. */
export function l1Norms(t: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => {
    const [n, h, w, c] = t.shape;
    return tf.sum(tf.sum(tf.abs(tf.reshape(t, [n, h, w * c])), 2), 1) as tf.Tensor1D;
  });
}

/** `[N]` → `[N, 1, 1, 1]`: a per-image factor or flag that broadcasts over whole images. */
export function perImage(v: tf.Tensor1D): tf.Tensor4D {
  return tf.reshape(v, [v.shape[0], 1, 1, 1]);
}

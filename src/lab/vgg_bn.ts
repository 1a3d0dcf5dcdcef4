/**
 * A VGG-style classifier with batch normalisation, the kind of network people train on
 * 32×32×3 images (CIFAR-10, GTSRB) and the second benchmark model of the WebGPU check
 * (issue 15). Simonyan & Zisserman's VGG (arXiv 1409.1556) with Ioffe & Szegedy's batch norm
 * (arXiv 1502.03167) after every convolution, narrowed to three blocks so that it trains on a CPU:
 *
 *   [conv3×3(w) - BN - ReLU] ×2 - maxpool 2
 *   [conv3×3(2w) - BN - ReLU] ×2 - maxpool 2
 *   [conv3×3(4w) - BN - ReLU] ×2 - maxpool 2
 *   flatten - dense(K) → logits
 *
 * Convolutions are 'same'-padded and carry no bias (the batch norm's offset takes its place).
 * At the default width 64 and 32×32×3 inputs that is 1,144,512 convolution weights, 1,792 batch
 * norm offsets and scales (plus as many moving statistics) and 40,970 dense weights: 1.19 M
 * trainable parameters, 4×4×256 features before the dense layer. Layers have fixed names, so two
 * builds from one seed serialise to the same `model.json`. PyTorch's twin is `vgg_bn()` in
 * `bench/webgpu_check_torch.py`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../errors.ts";
import { layerSeed } from "./train.ts";

/** Width of a {@link buildVggBn} network: filters of the first block (then 2w, 4w). */
export interface VggSize {
  /** Filters of the first block's convolutions. Default 64 (then 128 and 256). */
  width: number;
}

/** The default VGG width: 64-128-256, 1.19 M parameters on 32×32×3. */
export const DEFAULT_VGG: VggSize = { width: 64 };
/** A narrow VGG for tests on 2 CPU cores: 8-16-32 filters. */
export const SMALL_VGG: VggSize = { width: 8 };

/** Batch norm's momentum and epsilon, Keras's defaults (PyTorch: momentum 0.01 in its sense). */
export const VGG_BN_MOMENTUM = 0.99, VGG_BN_EPSILON = 1e-3;

/** The VGG's initializer seeds: {@link layerSeed} on a stream of their own. */
const vggSeed = (seed: number, layer: number) => layerSeed(seed, layer, 0x766);

/**
 * Builds the network above for `inputShape` (height and width divisible by 8, at least 8) and
 * `numClasses` outputs, Glorot-uniform kernels seeded from `seed`, batch-norm scales 1 and
 * offsets 0. Throws {@link ValidationError} on a shape the three pools cannot halve.
 */
export function buildVggBn(
  inputShape: [number, number, number],
  numClasses: number,
  seed: number,
  size: VggSize = DEFAULT_VGG,
): tf.Sequential {
  const [h, w] = inputShape;
  if (h < 8 || w < 8 || h % 8 !== 0 || w % 8 !== 0) {
    throw new ValidationError(
      `a VGG-BN network needs height and width divisible by 8 (three 2×2 pools); got ${h}×${w}`,
    );
  }
  if (!Number.isInteger(size.width) || size.width < 1 || size.width > 512) {
    throw new ValidationError(`VGG width must be an integer in 1..512; got ${size.width}`);
  }
  const model = tf.sequential({ name: "lab_vgg_bn" });
  let layer = 0;
  [1, 2, 4].forEach((mult, block) => {
    for (let j = 1; j <= 2; j++) {
      const name = `block${block + 1}_conv${j}`;
      model.add(tf.layers.conv2d({
        name,
        ...(layer === 0 ? { inputShape } : {}),
        filters: size.width * mult,
        kernelSize: 3,
        padding: "same",
        useBias: false,
        kernelInitializer: tf.initializers.glorotUniform({ seed: vggSeed(seed, layer++) }),
      }));
      model.add(tf.layers.batchNormalization({
        name: `${name}_bn`,
        momentum: VGG_BN_MOMENTUM,
        epsilon: VGG_BN_EPSILON,
      }));
      model.add(tf.layers.reLU({ name: `${name}_relu` }));
    }
    model.add(tf.layers.maxPooling2d({ name: `block${block + 1}_pool`, poolSize: 2 }));
  });
  model.add(tf.layers.flatten({ name: "flatten" }));
  model.add(tf.layers.dense({
    name: "logits",
    units: numClasses,
    kernelInitializer: tf.initializers.glorotUniform({ seed: vggSeed(seed, layer) }),
  }));
  return model;
}

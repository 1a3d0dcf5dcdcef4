/**
 * The benchmark model of DESIGN.md: 28×28×1 conv32-pool-conv64-pool-dense128-dense10 ('same'
 * padding, ReLU, logits out), seeded so every run starts from the same weights. PyTorch's twin is
 * `cnn()` in bench/torch_workloads.py.
 */
import * as tf from "@tensorflow/tfjs";
import type { Classifier } from "../src/model/classifier.ts";

export function smallCnn(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 32,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: 64,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: init(2),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 128, activation: "relu", kernelInitializer: init(3) }),
      tf.layers.dense({ units: 10, kernelInitializer: init(4) }),
    ],
  });
}

/** The model as the classifier view attacks and purification take. */
export function asClassifier(model: tf.LayersModel): Classifier {
  return {
    model,
    inputShape: [28, 28, 1],
    numClasses: 10,
    logits: (x, training) => model.apply(x, { training }) as tf.Tensor2D,
  };
}

/**
 * Convolutions that let the gradient tape skip what nobody asked for.
 *
 * tfjs-layers 4.22 runs every `Conv2D` layer through `tf.fused.conv2d`. Under a gradient tape
 * that op stays fused when the layer's activation is linear (the rule is `shouldFuse` in
 * tfjs-core: fused unless recording and the activation is not linear), and a fused convolution's
 * gradient is a `customGrad` that computes the input gradient, the filter gradient and the bias
 * gradient every time, whichever of them the caller wants. Linear convolutions are the rule in
 * the models people deploy: every convolution followed by batch norm (VGG-BN, every ResNet). So:
 *
 * - an attack (PGD, APGD, Square's none, FAB, detection evidence: any input gradient) paid for a
 *   filter gradient per convolution per step and threw it away. Measured on the lab's VGG-BN
 *   (`BACKEND=webgpu deno run -A bench/webgpu_check.ts --quick`, llvmpipe): 48.5% of a PGD step's
 *   kernel time was `Conv2DBackpropFilter`;
 * - a training step paid for the input gradient of the first convolution, whose input is data.
 *
 * {@link pruneConvGradients} gives each such layer a `call` that, while a tape records, runs the
 * unfused ops (`tf.conv2d`, then the bias add, then the activation): exactly what tfjs itself runs
 * under a tape for a convolution with a non-linear activation, whose registered gradients are
 * pruned by the tape to the inputs on the path to what is differentiated. With no tape recording
 * the layer keeps its fused call, so inference is unchanged bit for bit; so is every gradient of
 * a convolution with a non-linear activation (the same ops run as before). Weights, names and the
 * serialised model are untouched.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** The parts of a tfjs-layers `Conv2D` the unfused call reads. */
interface ConvLayer {
  getClassName(): string;
  rank?: number;
  dataFormat?: string;
  strides: [number, number];
  padding: "same" | "valid";
  dilationRate: [number, number];
  kernel?: { read(): tf.Tensor };
  bias?: { read(): tf.Tensor } | null;
  activation?: { apply(x: tf.Tensor): tf.Tensor };
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: unknown): tf.Tensor | tf.Tensor[];
}

/** Marks a layer already given the pruning call. */
const PRUNED = Symbol("purifier.prunedConvGradients");

/** Whether a gradient tape is recording (tfjs-core's own test, `ENGINE.state.gradientDepth`). */
function recording(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

function layersOf(layer: tf.layers.Layer): tf.layers.Layer[] {
  const inner = (layer as unknown as { layers?: tf.layers.Layer[] }).layers;
  return Array.isArray(inner) ? [layer, ...inner.flatMap(layersOf)] : [layer];
}

/**
 * Gives every 2-D, channels-last `Conv2D` of `model` (nested models included) the pruning call
 * described above; idempotent. Returns how many layers it changed.
 */
export function pruneConvGradients(model: tf.LayersModel): number {
  let changed = 0;
  for (const layer of layersOf(model as unknown as tf.layers.Layer)) {
    const conv = layer as unknown as ConvLayer & { [PRUNED]?: true };
    if (conv.getClassName() !== "Conv2D" || conv[PRUNED]) continue;
    if (conv.rank !== 2 || conv.dataFormat !== "channelsLast" || !conv.kernel) continue;
    const fused = conv.call.bind(conv);
    conv.call = (inputs, kwargs) => {
      if (!recording()) return fused(inputs, kwargs);
      return tf.tidy(() => {
        const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
        let y: tf.Tensor = tf.conv2d(
          x,
          conv.kernel!.read() as tf.Tensor4D,
          conv.strides,
          conv.padding,
          "NHWC",
          conv.dilationRate,
        );
        if (conv.bias) y = tf.add(y, conv.bias.read());
        return conv.activation ? conv.activation.apply(y) : y;
      });
    };
    conv[PRUNED] = true;
    changed++;
  }
  return changed;
}

/**
 * The Keras layer classes a model bundle may use. Kept to what image classifiers need and what
 * tfjs-layers 4.22 both deserialises and differentiates, so that attacks and purification (which
 * need gradients through every layer) never meet a layer they cannot handle. Anything else is
 * refused at parse time with a 422 that lists this set, rather than failing deep inside tfjs.
 */

/** Classes that hold other layers: their `config.layers` is walked recursively. */
export const CONTAINER_LAYERS: ReadonlySet<string> = new Set([
  "Sequential",
  "Functional",
  // tfjs and older Keras write plain functional models as "Model".
  "Model",
]);

/** Leaf layer classes accepted in a bundle (checked in tfjs-layers 4.22's registry). */
export const SUPPORTED_LAYERS: ReadonlySet<string> = new Set([
  "InputLayer",
  // Convolution and dense.
  "Conv2D",
  "DepthwiseConv2D",
  "SeparableConv2D",
  "Dense",
  // Reshaping and padding.
  "Flatten",
  "Reshape",
  "ZeroPadding2D",
  "Cropping2D",
  "UpSampling2D",
  // Pooling.
  "MaxPooling2D",
  "AveragePooling2D",
  "GlobalAveragePooling2D",
  "GlobalMaxPooling2D",
  // Normalisation and regularisation (identity at inference).
  "BatchNormalization",
  "LayerNormalization",
  "Dropout",
  // Activations.
  "Activation",
  "ReLU",
  "LeakyReLU",
  "ELU",
  "PReLU",
  "Softmax",
  // Merges for residual and inception-style blocks.
  "Add",
  "Concatenate",
  "Multiply",
  "Average",
  "Maximum",
  // tfjs-layers registers Rescaling (scale * x + offset), which Keras image models often start with.
  "Rescaling",
]);

/** Whether `className` may appear in a bundle, as a leaf layer or a container. */
export function isSupportedLayer(className: string): boolean {
  return SUPPORTED_LAYERS.has(className) || CONTAINER_LAYERS.has(className);
}

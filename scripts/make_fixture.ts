/**
 * Regenerates `tests/fixtures/tiny_cnn/`: two tiny TF.js classifiers trained on synthetic 10x10
 * grey images, plus 64 held-out images and labels as `.npy`.
 *
 *   deno run -A scripts/make_fixture.ts
 *
 * Deterministic on a given backend: the images come from our own seeded PRNG, the initializers
 * take fixed seeds and training does not shuffle. Runs in a few seconds on wasm.
 *
 * - `model.json` + `weights.bin`: Sequential conv-pool-dense with a softmax Dense output (the
 *   case the classifier loader must switch to logits).
 * - `residual/`: Functional model with a residual `Add`, BatchNormalization and a trailing
 *   `Softmax` layer, its weights split over two shards the way tfjs shards them (by bytes,
 *   across weight boundaries).
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../src/tensor/backend.ts";
import { saveBundle } from "../src/io/model_bundle.ts";
import { encodeNpy } from "../src/io/npy.ts";

const OUT = new URL("../tests/fixtures/tiny_cnn/", import.meta.url);
const SIZE = 10;
const CLASSES = 4;
const TRAIN = 512;
const HELD_OUT = 64;
const MIN_TRAIN_ACCURACY = 0.95;

/** mulberry32: small, fast and the same everywhere, which is all a fixture needs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One image of class `k`: 0 a horizontal bar, 1 a vertical bar, 2 a diagonal, 3 a hollow
 * square, each at a random offset, box-blurred, on a random dark background with noise.
 */
function drawImage(k: number, rand: () => number): Uint8Array {
  const img = new Float32Array(SIZE * SIZE);
  const at = (y: number, x: number) => {
    if (y >= 0 && y < SIZE && x >= 0 && x < SIZE) img[y * SIZE + x] = 1;
  };
  const oy = Math.floor(rand() * 5) - 2;
  const ox = Math.floor(rand() * 5) - 2;
  for (let i = 2; i < 8; i++) {
    if (k === 0) at(4 + oy, i + ox);
    if (k === 1) at(i + oy, 4 + ox);
    if (k === 2) at(i + oy, i + ox);
  }
  if (k === 3) {
    for (let i = 3; i < 7; i++) {
      at(3 + oy, i + ox);
      at(6 + oy, i + ox);
      at(i + oy, 3 + ox);
      at(i + oy, 6 + ox);
    }
  }
  const background = 0.05 + 0.15 * rand();
  const out = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      // A light 3x3 blur (centre weighted) so edges are not single hard pixels.
      let s = 0, w = 0;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= SIZE || xx < 0 || xx >= SIZE) continue;
          const weight = dy === 0 && dx === 0 ? 4 : 1;
          s += weight * img[yy * SIZE + xx];
          w += weight;
        }
      }
      const v = background + 0.8 * (s / w) + 0.2 * (rand() - 0.5);
      out[y * SIZE + x] = Math.round(255 * Math.min(1, Math.max(0, v)));
    }
  }
  return out;
}

function makeSet(n: number, seed: number): { x: Uint8Array; y: Int32Array } {
  const rand = prng(seed);
  const x = new Uint8Array(n * SIZE * SIZE);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % CLASSES;
    x.set(drawImage(y[i], rand), i * SIZE * SIZE);
  }
  // Fixed-seed Fisher-Yates so batches mix classes without fit()'s unseeded shuffle.
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const img = x.slice(i * SIZE * SIZE, (i + 1) * SIZE * SIZE);
    x.copyWithin(i * SIZE * SIZE, j * SIZE * SIZE, (j + 1) * SIZE * SIZE);
    x.set(img, j * SIZE * SIZE);
    [y[i], y[j]] = [y[j], y[i]];
  }
  return { x, y };
}

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

function sequentialModel(): tf.LayersModel {
  return tf.sequential({
    name: "tiny_cnn",
    layers: [
      tf.layers.conv2d({
        name: "conv",
        inputShape: [SIZE, SIZE, 1],
        filters: 6,
        kernelSize: 3,
        activation: "relu",
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ name: "pool", poolSize: 2 }),
      tf.layers.flatten({ name: "flatten" }),
      tf.layers.dense({
        name: "dense",
        units: CLASSES,
        activation: "softmax",
        kernelInitializer: init(2),
      }),
    ],
  });
}

function residualModel(): tf.LayersModel {
  const input = tf.input({ name: "image", shape: [SIZE, SIZE, 1] });
  const conv = (name: string, seed: number, activation: "relu" | "linear") =>
    tf.layers.conv2d({
      name,
      filters: 4,
      kernelSize: 3,
      padding: "same",
      activation,
      kernelInitializer: init(seed),
    });
  const a = conv("conv_a", 3, "relu").apply(input) as tf.SymbolicTensor;
  const b = conv("conv_b", 4, "linear").apply(a) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: "residual" }).apply([a, b]) as tf.SymbolicTensor;
  const norm = tf.layers.batchNormalization({ name: "bn" }).apply(sum) as tf.SymbolicTensor;
  const act = tf.layers.reLU({ name: "relu" }).apply(norm) as tf.SymbolicTensor;
  const pool = tf.layers.maxPooling2d({ name: "pool", poolSize: 2 }).apply(
    act,
  ) as tf.SymbolicTensor;
  const flat = tf.layers.flatten({ name: "flatten" }).apply(pool) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ name: "dense", units: CLASSES, kernelInitializer: init(5) })
    .apply(flat) as tf.SymbolicTensor;
  const probs = tf.layers.softmax({ name: "softmax" }).apply(dense) as tf.SymbolicTensor;
  return tf.model({ name: "tiny_residual", inputs: input, outputs: probs });
}

async function train(model: tf.LayersModel, x: tf.Tensor4D, y: tf.Tensor2D): Promise<number> {
  model.compile({ optimizer: tf.train.adam(0.01), loss: "categoricalCrossentropy" });
  await model.fit(x, y, { epochs: 25, batchSize: 32, shuffle: false, verbose: 0 });
  return accuracy(model, x, y);
}

async function accuracy(model: tf.LayersModel, x: tf.Tensor4D, y: tf.Tensor2D): Promise<number> {
  const hits = tf.tidy(() => (model.predict(x) as tf.Tensor2D).argMax(1).equal(y.argMax(1)).sum());
  const n = (await hits.data())[0];
  hits.dispose();
  return n / x.shape[0];
}

function asTensors(set: { x: Uint8Array; y: Int32Array }) {
  return tf.tidy(() => ({
    x: tf.tensor4d(set.x, [set.y.length, SIZE, SIZE, 1], "int32").toFloat().div(255) as tf.Tensor4D,
    y: tf.oneHot(tf.tensor1d(set.y, "int32"), CLASSES).toFloat() as tf.Tensor2D,
  }));
}

/** Splits one byte buffer into `n` shards the way tfjs does: by bytes, not by weight. */
function shard(bytes: Uint8Array, n: number): Uint8Array[] {
  const size = Math.ceil(bytes.byteLength / n);
  return Array.from({ length: n }, (_, i) => bytes.slice(i * size, (i + 1) * size));
}

const info = await initBackend((Deno.env.get("BACKEND") as "wasm" | "cpu" | undefined) ?? "wasm");
const t0 = performance.now();
const trainSet = makeSet(TRAIN, 20240517);
const heldOut = makeSet(HELD_OUT, 7);
const tr = asTensors(trainSet);
const te = asTensors(heldOut);

await Deno.mkdir(new URL("residual/", OUT), { recursive: true });
const report: string[] = [];
for (const [name, build] of [["tiny_cnn", sequentialModel], ["residual", residualModel]] as const) {
  const model = build();
  const trainAcc = await train(model, tr.x, tr.y);
  const testAcc = await accuracy(model, te.x, te.y);
  report.push(`${name}: ${model.countParams()} params, train ${trainAcc}, held-out ${testAcc}`);
  if (trainAcc < MIN_TRAIN_ACCURACY) {
    throw new Error(`${name} reached only ${trainAcc} train accuracy (< ${MIN_TRAIN_ACCURACY})`);
  }
  const saved = await saveBundle(model);
  const modelJson = JSON.parse(new TextDecoder().decode(saved.modelJson));
  if (name === "tiny_cnn") {
    await Deno.writeFile(new URL("model.json", OUT), pretty(modelJson));
    await Deno.writeFile(new URL("weights.bin", OUT), saved.weights[0].bytes);
  } else {
    const parts = shard(saved.weights[0].bytes, 2);
    const paths = parts.map((_, i) => `group1-shard${i + 1}of${parts.length}.bin`);
    modelJson.weightsManifest[0].paths = paths;
    await Deno.writeFile(new URL("residual/model.json", OUT), pretty(modelJson));
    for (let i = 0; i < parts.length; i++) {
      await Deno.writeFile(new URL(`residual/${paths[i]}`, OUT), parts[i]);
    }
  }
  model.dispose();
}
tf.dispose([tr.x, tr.y, te.x, te.y]);

await Deno.writeFile(
  new URL("x.npy", OUT),
  encodeNpy({ dtype: "uint8", shape: [HELD_OUT, SIZE, SIZE, 1], data: heldOut.x }),
);
await Deno.writeFile(
  new URL("y.npy", OUT),
  encodeNpy({ dtype: "int32", shape: [HELD_OUT], data: heldOut.y }),
);

function pretty(json: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(json, null, 2) + "\n");
}

// Keep the generated JSON in the shape `deno fmt --check` expects.
await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", OUT.pathname] }).output();

console.log(`backend ${info.name}; ${Math.round(performance.now() - t0)} ms`);
for (const line of report) console.log(line);

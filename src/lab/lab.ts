/**
 * The backdoor lab: builds a backdoored classifier and the data a defence is judged on, from one
 * seed. Steps: load Fashion-MNIST (or generate the synthetic set), split a training subset, an
 * extra set and a test set, poison the training subset (and, at its own rate, the extra set) with
 * a trigger, train a classifier on the poisoned training subset, and measure clean accuracy and
 * attack success rate (ASR: the fraction of triggered non-target test images classified as the
 * attacker's label).
 *
 * Two classifiers: `cnn`, the small Fashion-MNIST CNN of `train.ts` (the default), and `vgg-bn`,
 * the VGG-style network with batch norm of `vgg_bn.ts` for 32×32×3 inputs (issue 15's second
 * benchmark model). `vgg-bn` needs colour images whose sides three 2×2 pools can halve: the
 * synthetic set with `syntheticChannels: 3` (e.g. 32×32), or any set lifted to 32×32×3 with
 * `lift: "rgb32"` (Fashion-MNIST: zero-padded 2 px, its grey channel replicated).
 *
 * The extra set plays the user's own dirty data: `extra.y` holds the labels as poisoned and
 * `extra.isPoison` the ground truth a detector is scored against.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { z } from "zod";
import { ValidationError } from "../errors.ts";
import { type BundleFile, saveBundle } from "../io/model_bundle.ts";
import { encodeNpy } from "../io/npy.ts";
import { AttackModeSchema } from "../triggers/attack_mode.ts";
import { type TriggerSpec, TriggerSpecSchema } from "../triggers/trigger.ts";
import { type Dataset, subset } from "./dataset.ts";
import {
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  loadFashionMnist,
} from "./fashion_mnist.ts";
import { backdoorTestSet, poisonDataset } from "./poison.ts";
import { Rng } from "../random/rng.ts";
import { SYNTHETIC_CLASSES, syntheticDataset } from "./synthetic.ts";
import { LIFT_SIDE, liftToRgb32 } from "./lift.ts";
import {
  accuracyOn,
  buildCnn,
  type CnnSize,
  DEFAULT_CNN,
  type EpochLog,
  preciseBatchNorm,
  SMALL_CNN,
  trainClassifier,
} from "./train.ts";
import { buildVggBn, DEFAULT_VGG, type VggSize } from "./vgg_bn.ts";

const count = (def: number, max: number, what: string) =>
  z.int().min(0).max(max).default(def).describe(what);
const rate = (def: number, what: string) => z.number().min(0).max(1).default(def).describe(what);

/** Every lab option, its bounds and its default. */
export const LabOptionsSchema = z.object({
  dataset: z.enum(["fashion-mnist", "synthetic"]).default("fashion-mnist").describe(
    "fashion-mnist (Debian's dataset-fashion-mnist files) or a seeded synthetic shapes set",
  ),
  dataDir: z.string().min(1).default(DEFAULT_FASHION_MNIST_DIR).describe(
    "directory of the Fashion-MNIST IDX files (gzipped or raw)",
  ),
  attack: z.enum(["badnets", "blend", "wanet", "sig"]).default("badnets").describe(
    "trigger type, with its default parameters and the lab's seed",
  ),
  trigger: TriggerSpecSchema.optional().describe("full trigger spec; overrides attack"),
  mode: AttackModeSchema.default("all-to-one"),
  target: z.int().min(0).max(9).default(0).describe(
    "target class of an all-to-one or clean-label attack",
  ),
  poisonRate: rate(0.1, "fraction of the training subset that is poisoned"),
  trainSize: count(
    20_000,
    60_000,
    "training images (a seeded subset for Fashion-MNIST); 20,000 × 3 epochs trains in 2-4 " +
      "minutes on 2 CPU cores",
  ),
  extraSize: count(2_000, 60_000, "images of the extra (user's dirty) set"),
  extraPoisonRate: rate(0.1, "fraction of the extra set that is poisoned"),
  extraImbalance: z.number().min(1).max(100).default(1).describe(
    "ratio of the most to the least frequent class in the extra set (1: drawn uniformly, as " +
      "the data come); classes' shares fall geometrically in a seeded order, so some natural " +
      "class stands out by its count although no label was flipped",
  ),
  testSize: count(2_000, 10_000, "clean test images"),
  epochs: z.int().min(0).max(100).default(3),
  batchSize: z.int().min(1).max(4096).default(128),
  optimizer: z.enum(["adam", "sgd"]).default("adam"),
  learningRate: z.number().positive().max(10).optional().describe(
    "default 2e-3 for adam (twice the usual 1e-3: it reaches about 87% clean accuracy on " +
      "Fashion-MNIST in 3 epochs, against 85-86%), 0.01 for sgd (momentum 0.9)",
  ),
  syntheticSize: z.int().min(8).max(64).default(16).describe("side of synthetic images"),
  syntheticClasses: z.int().min(2).max(10).default(6).describe("classes of the synthetic set"),
  syntheticChannels: z.union([z.literal(1), z.literal(3)]).default(1).describe(
    "1: grey synthetic images; 3: each shape in a seeded random colour (per image, so the " +
      "colour says nothing of the class), noise per channel",
  ),
  lift: z.enum(["none", "rgb32"]).default("none").describe(
    "rgb32: zero-pad every image evenly to 32×32 and replicate a grey channel to 3 (Fashion-" +
      "MNIST: 2 px on each side), the CIFAR shape that vgg-bn is built for",
  ),
  model: z.enum(["cnn", "vgg-bn"]).default("cnn").describe(
    "cnn: the small CNN (conv32-pool-conv64-pool-dense128 at 24×24 and above, conv8-conv16-" +
      "dense32 below); vgg-bn: [conv3×3-BN-ReLU]×2-maxpool blocks of w, 2w, 4w filters and a " +
      "dense layer, for 3-channel images with sides divisible by 8",
  ),
  vggWidth: z.int().min(1).max(512).default(DEFAULT_VGG.width).describe(
    "vgg-bn: filters of the first block (then 2w and 4w); 64 is 1.19 M parameters on 32×32×3, " +
      "8 trains in seconds",
  ),
  bnStatistics: z.enum(["precise", "ema"]).default("precise").describe(
    "batch-norm moving statistics the saved model carries (models with batch norm only): ema, " +
      "the moving averages training left (momentum 0.99: a short run leaves them near their " +
      "initial 0 and 1); precise, re-estimated after training as the mean over the training " +
      "set of the per-batch statistics (PreciseBN, Wu & Johnson, arXiv 2105.07576)",
  ),
  seed: z.int().min(0).max(2 ** 31 - 1).default(1).describe(
    "seeds the split, the poisoning, the trigger (unless given), weight init and shuffling",
  ),
}).strict();

export type LabOptions = z.output<typeof LabOptionsSchema>;

/** `[H, W, C]` of the images the lab trains on, as `o` asks for them. */
export function labInputShape(o: LabOptions): [number, number, number] {
  if (o.lift === "rgb32") return [LIFT_SIDE, LIFT_SIDE, 3];
  return o.dataset === "synthetic"
    ? [o.syntheticSize, o.syntheticSize, o.syntheticChannels]
    : [28, 28, 1];
}
export type LabOptionsInput = z.input<typeof LabOptionsSchema>;

/** An 8-bit NHWC image set with int32 labels, ready for `.npy`. */
export interface LabImages {
  x: Uint8Array;
  y: Int32Array;
  shape: [number, number, number, number];
}

/** Everything `lab.json` holds. */
export interface LabReport {
  settings: LabOptions;
  trigger: TriggerSpec;
  backend: string;
  tfjsVersion: string;
  numClasses: number;
  classNames: string[];
  /** `cnn` or `vgg-bn` (also in `settings.model`). */
  model: LabOptions["model"];
  /** The CNN's widths, or the VGG's first-block width. */
  architecture: CnnSize | VggSize;
  /** Trainable scalars of the model. */
  parameters: number;
  /** Input `[H, W, C]`. */
  inputShape: [number, number, number];
  counts: {
    train: number;
    trainPoisoned: number;
    extra: number;
    extraPoisoned: number;
    test: number;
    testBackdoor: number;
  };
  history: (EpochLog & { cleanAccuracy: number; attackSuccessRate: number })[];
  cleanAccuracy: number;
  attackSuccessRate: number;
  /** Seconds per phase. */
  timings: { data: number; poison: number; train: number; evaluate: number; total: number };
}

export interface LabResult {
  /** The backdoored model in wire format (softmax output), as `saveBundle` writes it. */
  model: { modelJson: Uint8Array; weights: BundleFile[] };
  trigger: TriggerSpec;
  /** The user's dirty set: labels as poisoned, `isPoison` the ground truth, `cleanY` the truth. */
  extra: LabImages & { isPoison: Uint8Array; cleanY: Int32Array };
  /** Clean test images. */
  test: LabImages;
  /** Triggered non-target test images, labelled with the attacker's class. */
  testBackdoor: LabImages;
  report: LabReport;
}

/** Seed streams of the lab's random draws; distinct so each draw is independent. */
const STREAM = {
  split: 11,
  poisonTrain: 12,
  poisonExtra: 13,
  shuffle: 14,
  init: 15,
  imbalance: 16,
};

/**
 * Validates lab options and fills in defaults.
 *
 * @throws {ValidationError} naming each bad option and what it allows.
 */
export function parseLabOptions(input: unknown): LabOptions {
  const parsed = LabOptionsSchema.safeParse(input);
  if (!parsed.success) {
    throw ValidationError.fromZod(parsed.error, { label: "invalid lab options", root: "options" });
  }
  const o = parsed.data;
  const [h, w, c] = labInputShape(o);
  if (o.lift === "rgb32" && o.dataset === "synthetic") {
    const d = LIFT_SIDE - o.syntheticSize;
    if (d < 0 || d % 2 !== 0) {
      throw new ValidationError(
        `lift rgb32 pads evenly to 32×32: syntheticSize must be at most 32 and even; got ` +
          `${o.syntheticSize}`,
      );
    }
  }
  if (o.model === "vgg-bn" && (c !== 3 || h % 8 !== 0 || w % 8 !== 0)) {
    throw new ValidationError(
      `model vgg-bn takes 3-channel images with height and width divisible by 8 (three 2×2 ` +
        `pools); these options give ${h}×${w}×${c}. Use lift "rgb32" (Fashion-MNIST as ` +
        `32×32×3) or dataset "synthetic" with syntheticChannels 3 and a syntheticSize of 16, ` +
        `24, 32 ...`,
      { model: o.model, inputShape: [h, w, c] },
    );
  }
  return o;
}

function seedOf(seed: number, stream: number): number {
  return new Rng(seed, stream).uint32() % 2147483647;
}

/** The first `k` entries of a seeded permutation of [0, n). */
function pick(n: number, k: number, rng: Rng): Int32Array {
  return rng.sample(Int32Array.from({ length: n }, (_, i) => i), k);
}

async function loadSplits(
  o: LabOptions,
): Promise<{ train: Dataset; extra: Dataset; test: Dataset; classNames: string[] }> {
  const splits = await loadRawSplits(o);
  if (o.lift === "none") return splits;
  return {
    ...splits,
    train: liftToRgb32(splits.train),
    extra: liftToRgb32(splits.extra),
    test: liftToRgb32(splits.test),
  };
}

async function loadRawSplits(
  o: LabOptions,
): Promise<{ train: Dataset; extra: Dataset; test: Dataset; classNames: string[] }> {
  if (o.dataset === "synthetic") {
    const common = {
      size: o.syntheticSize,
      numClasses: o.syntheticClasses,
      channels: o.syntheticChannels,
    };
    const pool = syntheticDataset({ ...common, n: o.trainSize + o.extraSize, seed: o.seed });
    const test = syntheticDataset({ ...common, n: o.testSize, seed: seedOf(o.seed, STREAM.split) });
    const idx = Int32Array.from({ length: pool.y.length }, (_, i) => i);
    return {
      train: subset(pool, idx.subarray(0, o.trainSize)),
      extra: subset(pool, idx.subarray(o.trainSize)),
      test,
      classNames: SYNTHETIC_CLASSES.slice(0, o.syntheticClasses),
    };
  }
  const fm = await loadFashionMnist(o.dataDir);
  const pool = fm.train.y.length;
  if (o.trainSize + o.extraSize > pool) {
    throw new ValidationError(
      `trainSize + extraSize = ${o.trainSize + o.extraSize} exceeds the ${pool} training images`,
    );
  }
  const rng = new Rng(o.seed, STREAM.split);
  // Training subset and extra set are disjoint draws from the 60,000 training images.
  const order = pick(pool, o.trainSize + o.extraSize, rng);
  const extraIdx = o.extraImbalance > 1
    ? unbalancedDraw(fm.train.y, order.subarray(0, o.trainSize), fm.train.numClasses, o)
    : order.subarray(o.trainSize);
  return {
    train: subset(fm.train, order.subarray(0, o.trainSize)),
    extra: subset(fm.train, extraIdx),
    test: subset(fm.test, pick(fm.test.y.length, Math.min(o.testSize, fm.test.y.length), rng)),
    classNames: [...FASHION_MNIST_CLASSES],
  };
}

/**
 * `o.extraSize` indices outside `taken` whose class shares fall geometrically from 1 to
 * `1/o.extraImbalance` in a seeded class order. The training subset and the test set are the
 * same draws as for a balanced extra set of the same seed.
 */
function unbalancedDraw(
  y: Int32Array,
  taken: Int32Array,
  k: number,
  o: LabOptions,
): Int32Array {
  const rng = new Rng(o.seed, STREAM.imbalance);
  const rank = rng.sample(Int32Array.from({ length: k }, (_, c) => c), k);
  const share = new Float64Array(k);
  rank.forEach((c, r) => share[c] = o.extraImbalance ** (-r / Math.max(1, k - 1)));
  const total = share.reduce((a, b) => a + b, 0);
  const quota = Array.from(share, (s) => Math.floor((o.extraSize * s) / total));
  for (let r = 0; quota.reduce((a, b) => a + b, 0) < o.extraSize; r = (r + 1) % k) quota[rank[r]]++;
  const used = new Uint8Array(y.length);
  for (const i of taken) used[i] = 1;
  const out: number[] = [];
  for (const i of rng.sample(Int32Array.from({ length: y.length }, (_, i) => i), y.length)) {
    if (used[i] || quota[y[i]] === 0) continue;
    quota[y[i]]--;
    out.push(i);
    if (out.length === o.extraSize) break;
  }
  if (out.length < o.extraSize) {
    throw new ValidationError(
      `extraImbalance ${o.extraImbalance}: not enough images left to fill the extra set's quotas`,
    );
  }
  return Int32Array.from(out);
}

function images(d: Dataset): LabImages {
  return { x: d.x, y: d.y, shape: d.shape };
}

/**
 * Runs the whole lab in memory and returns the backdoored model (as bundle bytes), the data sets
 * and the report. Needs an initialised tfjs backend (`initBackend`); leaves no tensor behind.
 * `log` receives one line per phase and epoch.
 *
 * @throws {ValidationError} bad options (see {@link LabOptionsSchema}).
 * @throws {UnprocessableError} Fashion-MNIST was asked for but its files are missing.
 */
export async function runLab(
  input: LabOptionsInput = {},
  log: (line: string) => void = () => {},
): Promise<LabResult> {
  const o = parseLabOptions(input);
  const t0 = performance.now();
  const since = (t: number) => (performance.now() - t) / 1000;

  const { train, extra, test, classNames } = await loadSplits(o);
  const numClasses = train.numClasses;
  if (o.mode !== "all-to-all" && o.target >= numClasses) {
    throw new ValidationError(`target must be a class in [0, ${numClasses - 1}]; got ${o.target}`);
  }
  const tData = since(t0);
  log(
    `data: ${o.dataset} ${train.shape.slice(1).join("x")}, ${numClasses} classes; ` +
      `train ${train.y.length}, extra ${extra.y.length}, test ${test.y.length} ` +
      `(${tData.toFixed(1)} s)`,
  );

  const t1 = performance.now();
  const trigger: TriggerSpec = o.trigger ??
    TriggerSpecSchema.parse({ type: o.attack, seed: o.seed });
  const poisonOpts = { trigger, mode: o.mode, target: o.target };
  const trainP = poisonDataset(train, {
    ...poisonOpts,
    rate: o.poisonRate,
    seed: seedOf(o.seed, STREAM.poisonTrain),
  });
  const extraP = poisonDataset(extra, {
    ...poisonOpts,
    rate: o.extraPoisonRate,
    seed: seedOf(o.seed, STREAM.poisonExtra),
  });
  const testBd = backdoorTestSet(test, trigger, o.mode, o.target);
  const tPoison = since(t1);
  log(
    `poison: ${JSON.stringify(trigger)} ${o.mode}` +
      (o.mode !== "all-to-all" ? ` target ${o.target}` : "") +
      `; ${trainP.poisonIndices.length} training and ${extraP.poisonIndices.length} extra ` +
      `images poisoned (${tPoison.toFixed(1)} s)`,
  );

  const [, h, w, c] = train.shape;
  const initSeed = seedOf(o.seed, STREAM.init);
  let architecture: CnnSize | VggSize, model: tf.Sequential;
  if (o.model === "vgg-bn") {
    architecture = { width: o.vggWidth };
    model = buildVggBn([h, w, c], numClasses, initSeed, architecture);
  } else {
    architecture = h >= 24 && w >= 24 ? DEFAULT_CNN : SMALL_CNN;
    model = buildCnn([h, w, c], numClasses, initSeed, architecture);
  }
  const parameters = model.trainableWeights.reduce((sum, v) => sum + v.read().size, 0);
  log(`model: ${o.model} ${JSON.stringify(architecture)}, ${parameters} parameters`);
  const learningRate = o.learningRate ?? (o.optimizer === "adam" ? 2e-3 : 0.01);
  const history: LabReport["history"] = [];
  let evalSeconds = 0;
  const evaluate = async () => {
    const te = performance.now();
    const acc = await accuracyOn(model, test);
    const asr = await accuracyOn(model, testBd);
    evalSeconds += since(te);
    return { acc, asr };
  };
  let cleanAccuracy = NaN, attackSuccessRate = NaN;
  let bundle: LabResult["model"];
  const t2 = performance.now();
  try {
    await trainClassifier(model, trainP, {
      epochs: o.epochs,
      batchSize: o.batchSize,
      optimizer: o.optimizer,
      learningRate,
      seed: seedOf(o.seed, STREAM.shuffle),
      onEpoch: async (e) => {
        const { acc, asr } = await evaluate();
        history.push({ ...e, cleanAccuracy: acc, attackSuccessRate: asr });
        log(
          `epoch ${e.epoch}/${o.epochs}: loss ${e.loss.toFixed(4)}, train acc ` +
            `${pct(e.accuracy)}, clean acc ${pct(acc)}, ASR ${pct(asr)} (${
              e.seconds.toFixed(1)
            } s)`,
        );
      },
    });
    const precise = o.bnStatistics === "precise" && o.epochs > 0 &&
      await preciseBatchNorm(model, trainP, { batchSize: o.batchSize });
    if (precise) {
      // The epochs' figures were measured with the moving averages; the model saved is this one.
      ({ acc: cleanAccuracy, asr: attackSuccessRate } = await evaluate());
      log(
        `precise batch-norm statistics: clean acc ${pct(cleanAccuracy)}, ASR ` +
          `${pct(attackSuccessRate)}`,
      );
    } else if (history.length > 0) {
      ({ cleanAccuracy, attackSuccessRate } = history[history.length - 1]);
    } else {
      ({ acc: cleanAccuracy, asr: attackSuccessRate } = await evaluate());
    }
    bundle = await saveBundle(model, { outputActivation: "softmax" });
  } finally {
    model.dispose();
  }
  const tTrain = since(t2) - evalSeconds;
  log(
    `result: clean accuracy ${pct(cleanAccuracy)}, attack success rate ${pct(attackSuccessRate)}`,
  );

  const report: LabReport = {
    // A full trigger spec overrides `attack`; report the type actually used.
    settings: { ...o, attack: trigger.type, learningRate },
    trigger,
    backend: tf.getBackend(),
    tfjsVersion: tf.version.tfjs,
    numClasses,
    classNames,
    model: o.model,
    architecture,
    parameters,
    inputShape: [h, w, c],
    counts: {
      train: trainP.y.length,
      trainPoisoned: trainP.poisonIndices.length,
      extra: extraP.y.length,
      extraPoisoned: extraP.poisonIndices.length,
      test: test.y.length,
      testBackdoor: testBd.y.length,
    },
    history,
    cleanAccuracy,
    attackSuccessRate,
    timings: {
      data: round3(tData),
      poison: round3(tPoison),
      train: round3(tTrain),
      evaluate: round3(evalSeconds),
      total: round3(since(t0)),
    },
  };
  return {
    model: bundle,
    trigger,
    extra: { ...images(extraP), isPoison: extraP.isPoison, cleanY: extraP.cleanY },
    test: images(test),
    testBackdoor: images(testBd),
    report,
  };
}

function pct(v: number): string {
  return `${(100 * v).toFixed(2)}%`;
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** File name → bytes of everything the lab writes (see {@link writeLabOutputs}). */
export function labFiles(r: LabResult): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2) + "\n");
  files.set("model.json", r.model.modelJson);
  for (const shard of r.model.weights) files.set(shard.name, shard.bytes);
  const put = (stem: string, s: LabImages) => {
    files.set(`${stem}_x.npy`, encodeNpy({ dtype: "uint8", shape: s.shape, data: s.x }));
    files.set(`${stem}_y.npy`, encodeNpy({ dtype: "int32", shape: [s.y.length], data: s.y }));
  };
  put("extra", r.extra);
  files.set(
    "extra_is_poison.npy",
    encodeNpy({ dtype: "uint8", shape: [r.extra.isPoison.length], data: r.extra.isPoison }),
  );
  files.set(
    "extra_clean_y.npy",
    encodeNpy({ dtype: "int32", shape: [r.extra.cleanY.length], data: r.extra.cleanY }),
  );
  put("test", r.test);
  put("test_bd", r.testBackdoor);
  files.set("trigger.json", text(r.trigger));
  files.set("lab.json", text(r.report));
  return files;
}

/**
 * Writes the lab's outputs to `dir` (created if needed): `model.json` + `weights.bin`,
 * `extra_{x,y,is_poison,clean_y}.npy`, `test_{x,y}.npy`, `test_bd_{x,y}.npy`, `trigger.json` and
 * `lab.json`. Returns the paths written.
 */
export async function writeLabOutputs(r: LabResult, dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const [name, bytes] of labFiles(r)) {
    const path = `${dir}/${name}`;
    await Deno.writeFile(path, bytes);
    paths.push(path);
  }
  return paths;
}

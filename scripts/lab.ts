/**
 * The backdoor lab from the command line: trains a backdoored classifier and writes it, its
 * trigger and the data sets a defence is judged on (see `src/lab/lab.ts`).
 *
 *   deno task lab -- --dataset fashion-mnist --attack badnets --out /tmp/lab_badnets
 *
 * Flags (defaults from `LabOptionsSchema`): --dataset fashion-mnist|synthetic, --data-dir DIR,
 * --attack badnets|blend|wanet|sig, --trigger JSON (a full trigger spec; overrides --attack),
 * --mode all-to-one|all-to-all|clean-label, --target 0, --poison-rate 0.1, --train 20000,
 * --extra 2000, --extra-poison-rate 0.1, --extra-imbalance 1, --test 2000, --epochs 3, --batch-size 128, --optimizer adam|sgd,
 * --lr NUM, --synthetic-size 16, --synthetic-classes 6, --synthetic-channels 1|3, --lift none|rgb32,
 * --model cnn|vgg-bn, --vgg-width 64, --bn-statistics precise|ema, --seed 1,
 * --backend wasm|cpu|webgpu, --out DIR (default out/lab). `BACKEND` in the environment also picks
 * the backend.
 *
 * The VGG-BN model of issue 15 on 32×32×3 data (Fashion-MNIST lifted, or synthetic colour shapes):
 *
 *   deno task lab -- --model vgg-bn --lift rgb32 --out /tmp/lab_vgg
 *   deno task lab -- --model vgg-bn --vgg-width 8 --dataset synthetic --synthetic-size 32 \
 *     --synthetic-channels 3 --train 2000 --epochs 2 --out /tmp/lab_vgg_small
 *
 * `--quick` is a small lab for a first look and for the README's session (which a test runs):
 * {@link QUICK} sizes (8,000 training images for 2 epochs, 500-image extra and test sets: about
 * half a minute on 2 cores, and the backdoor still takes); a size flag given with it wins.
 */
import { parseArgs } from "node:util";
import { HttpError } from "../src/errors.ts";
import { parseLabOptions, runLab, writeLabOutputs } from "../src/lab/lab.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";

const STRING_FLAGS = {
  dataset: "dataset",
  "data-dir": "dataDir",
  attack: "attack",
  mode: "mode",
  optimizer: "optimizer",
  lift: "lift",
  model: "model",
  "bn-statistics": "bnStatistics",
} as const;
const NUMBER_FLAGS = {
  target: "target",
  "poison-rate": "poisonRate",
  train: "trainSize",
  extra: "extraSize",
  "extra-poison-rate": "extraPoisonRate",
  "extra-imbalance": "extraImbalance",
  test: "testSize",
  epochs: "epochs",
  "batch-size": "batchSize",
  lr: "learningRate",
  "synthetic-size": "syntheticSize",
  "synthetic-classes": "syntheticClasses",
  "synthetic-channels": "syntheticChannels",
  "vgg-width": "vggWidth",
  seed: "seed",
} as const;

/** `--quick`'s sizes (the demo's Fashion-MNIST lab with smaller extra and test sets). */
export const QUICK = { trainSize: 8_000, extraSize: 500, testSize: 500, epochs: 2 } as const;

function usage(): string {
  const flags = [...Object.keys(STRING_FLAGS), ...Object.keys(NUMBER_FLAGS), "trigger", "backend"];
  return `usage: deno task lab [--] [--out DIR] [--quick] ${
    flags.map((f) => `[--${f} V]`).join(" ")
  }\n  --quick: ${QUICK.trainSize} training images, ${QUICK.epochs} epochs, extra and test sets ` +
    `of ${QUICK.extraSize} (about half a minute on 2 cores); size flags given with it win`;
}

async function main(args: string[]): Promise<number> {
  const names = [...Object.keys(STRING_FLAGS), ...Object.keys(NUMBER_FLAGS)];
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        ...Object.fromEntries(names.map((n) => [n, { type: "string" as const }])),
        trigger: { type: "string" },
        backend: { type: "string" },
        out: { type: "string", default: "out/lab" },
        quick: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : err}\n${usage()}`);
    return 2;
  }
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const options: Record<string, unknown> = values.quick ? { ...QUICK } : {};
  for (const [flag, key] of Object.entries(STRING_FLAGS)) {
    if (values[flag] !== undefined) options[key] = values[flag];
  }
  for (const [flag, key] of Object.entries(NUMBER_FLAGS)) {
    const v = values[flag];
    // A non-numeric value becomes NaN, which the schema then rejects with the flag's name.
    if (typeof v === "string") options[key] = v.trim() === "" ? NaN : Number(v);
  }
  if (typeof values.trigger === "string") {
    try {
      options.trigger = JSON.parse(values.trigger);
    } catch {
      console.error(`--trigger must be a JSON trigger spec, e.g. '{"type":"blend","alpha":0.2}'`);
      return 2;
    }
  }
  try {
    // Bad options fail here, before the backend spends seconds starting.
    parseLabOptions(options);
  } catch (err) {
    if (err instanceof HttpError) {
      console.error(`error: ${err.message}\n${usage()}`);
      return 2;
    }
    throw err;
  }
  const backend = (values.backend ?? Deno.env.get("BACKEND")) as BackendName | undefined;
  const info = await initBackend(backend);
  console.log(`backend: ${info.name} (tfjs ${info.tfjsVersion})`);
  try {
    const result = await runLab(options, (line) => console.log(line));
    const out = String(values.out);
    const paths = await writeLabOutputs(result, out);
    console.log(`wrote ${paths.length} files to ${out} in ${result.report.timings.total} s`);
    return 0;
  } catch (err) {
    if (err instanceof HttpError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

// `deno task lab -- --flag` forwards the `--` itself; drop it so parseArgs sees the flags.
if (import.meta.main) Deno.exit(await main(Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args));

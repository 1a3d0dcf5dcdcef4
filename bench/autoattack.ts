/**
 * Robust accuracy you can trust, per model, side by side: PGD-20 (the old `/v1/evaluate` figure),
 * each AutoAttack member alone (APGD-CE, APGD-T, Square), the ensemble's worst case per image
 * (with robust accuracy after each member of the cascade) and its gradient-masking check. All
 * in-process through `runAttack`, on the first `--images` test images of each lab folder, L-inf
 * 8/255.
 *
 * Usage:
 *   deno run -A bench/autoattack.ts [--images 200] [--version standard|fast] [--masked DIR]
 *     [--json out/autoattack.jsonl] [--unit-cost] [folder ...]
 *
 * `--unit-cost` first measures, on the first folder's model, a forward pass (a Square query)
 * against a gradient evaluation (an APGD step) per image, side by side in one run: the weight
 * the cost bound gives Square's queries.
 *
 * Each folder holds `model.json`, `weights.bin`, `test_x.npy`, `test_y.npy` (a lab folder); a
 * purified model's folder is given as `MODEL_DIR@TEST_DIR`, its test files from the lab's folder. `--masked DIR` also
 * benches a deliberately masked copy of DIR's model: its last Dense layer's kernel and bias
 * multiplied by 1e4, so its logits are 1e4 × the original's (same predictions, saturated softmax:
 * cross-entropy gradients underflow to exactly 0). BACKEND picks the tensor backend (default wasm).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { readBundleDir } from "../client/bundle_files.ts";
import { makeOracle } from "../src/attacks/oracle.ts";
import { runAttack } from "../src/attacks/run.ts";
import { robustAccuracy } from "../src/metrics/robust_accuracy.ts";
import { type AttackParamsInput, AttackParamsSchema } from "../src/attacks/options.ts";
import { imagesFromNpy } from "../src/io/images.ts";
import { parseBundle } from "../src/io/model_bundle.ts";
import { parseNpy } from "../src/io/npy.ts";
import { loadClassifier } from "../src/model/load_classifier.ts";
import type { Classifier } from "../src/model/classifier.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";
import { scaledLastLayer } from "../tests/attacks/_fixtures.ts";

const LIMITS = {
  maxModelJsonBytes: 64 << 20,
  maxWeightBytes: 1 << 30,
  maxParams: 200_000_000,
  maxLayers: 10_000,
};

interface Args {
  folders: string[];
  images: number;
  version: "standard" | "fast";
  masked?: string;
  json?: string;
  unitCost?: boolean;
}

function args(argv: string[]): Args {
  const a: Args = { folders: [], images: 200, version: "standard" };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === "--images") a.images = Number(v());
    else if (argv[i] === "--version") a.version = v() as Args["version"];
    else if (argv[i] === "--masked") a.masked = v();
    else if (argv[i] === "--json") a.json = v();
    else if (argv[i] === "--unit-cost") a.unitCost = true;
    else a.folders.push(argv[i]);
  }
  return a;
}

/** The bundle files of `dir`; with `scaleLast`, its final Dense kernel and bias multiplied by it. */
async function bundle(dir: string, scaleLast?: number) {
  const b = await readBundleDir(dir);
  if (scaleLast === undefined) return b;
  if (b.weights.length !== 1) throw new Error("--masked expects a single-shard model");
  const [w] = b.weights;
  return {
    modelJson: b.modelJson,
    weights: [{ name: w.name, bytes: scaledLastLayer(b.modelJson, w.bytes, scaleLast) }],
  };
}

function testSet(dir: string, n: number) {
  const images = imagesFromNpy(parseNpy(Deno.readFileSync(`${dir}/test_x.npy`)), {
    maxImages: 1_000_000,
    maxPixels: 2_000_000_000,
  });
  const labels = Int32Array.from(
    parseNpy(Deno.readFileSync(`${dir}/test_y.npy`)).data as ArrayLike<number>,
  );
  const [, h, w, c] = images.shape;
  const m = Math.min(n, images.shape[0]);
  return {
    images: {
      shape: [m, h, w, c] as [number, number, number, number],
      data: images.data.subarray(0, m * h * w * c),
    },
    labels: labels.subarray(0, m),
  };
}

async function attack(clf: Classifier, set: ReturnType<typeof testSet>, p: AttackParamsInput) {
  const params = AttackParamsSchema.parse(p);
  const t0 = performance.now();
  const { report } = await runAttack(clf, set.images, set.labels, params, {
    maxCost: Number.MAX_SAFE_INTEGER,
  });
  return { report, seconds: (performance.now() - t0) / 1000 };
}

const pct = (v: number | null | undefined) => typeof v === "number" ? (100 * v).toFixed(1) : "—";

async function benchModel(
  name: string,
  clf: Classifier,
  set: ReturnType<typeof testSet>,
  a: Args,
  masked: boolean,
) {
  const eps = 8 / 255;
  const pgd = await attack(clf, set, {
    attack: "pgd",
    eps,
    steps: 20,
    step_size: eps / 4,
    restarts: 1,
  });
  const full = await attack(clf, set, { attack: "autoattack", version: a.version, eps });
  const alone = async (member: "apgd-t" | "square") =>
    await attack(clf, set, { attack: "autoattack", version: a.version, eps, members: [member] });
  const apgdT = await alone("apgd-t");
  const sq = await alone("square");
  const ens = full.report.ensemble!;
  const after = Object.fromEntries(ens.members.map((m) => [m.member, m]));
  const row = {
    model: name,
    n: set.labels.length,
    clean_accuracy: full.report.clean_accuracy,
    pgd20: pgd.report.robust_accuracy,
    apgd_ce: after["apgd-ce"].robust_accuracy,
    apgd_t: apgdT.report.robust_accuracy,
    square: sq.report.robust_accuracy,
    worst_case: ens.worst_case_robust_accuracy,
    cascade: ens.members.map((m) => ({
      member: m.member,
      attacked: m.attacked,
      broken: m.broken,
      robust_accuracy: m.robust_accuracy,
      queries: m.queries,
      seconds: m.time_ms / 1000,
    })),
    masking: ens.gradient_masking,
    // Only CE-based white-box attacks before Square: what the check sees without APGD-T's DLR
    // (run for the masked model only: elsewhere it repeats Square's work for the same answer).
    masking_ce_only: masked
      ? (await attack(clf, set, {
        attack: "autoattack",
        version: a.version,
        eps,
        members: ["apgd-ce", "square"],
      })).report.ensemble!.gradient_masking
      : null,
    // What /v1/evaluate's default (PGD-20 with its masking check) reports on the same images.
    evaluate_pgd: await (async () => {
      const t0 = performance.now();
      const r = await robustAccuracy(clf, set.images, set.labels, { eps });
      return {
        robust_accuracy: r.robust_accuracy,
        worst_case_robust_accuracy: r.worst_case_robust_accuracy,
        gradient_masking: r.gradient_masking,
        seconds: (performance.now() - t0) / 1000,
      };
    })(),
    seconds: {
      pgd20: pgd.seconds,
      autoattack: full.seconds,
      apgd_t: apgdT.seconds,
      square: sq.seconds,
    },
  };
  if (a.json) await Deno.writeTextFile(a.json, JSON.stringify(row) + "\n", { append: true });
  console.log(
    `| ${name} | ${pct(row.clean_accuracy)} | ${pct(row.pgd20)} | ${pct(row.apgd_ce)} | ` +
      `${pct(row.apgd_t)} | ${pct(row.square)} | ${pct(row.worst_case)} | ` +
      `${pct(row.pgd20 - row.worst_case)} | ${
        row.masking.gradient_masking_suspected ? "yes" : "no"
      } / ` +
      `${
        row.masking_ce_only === null
          ? "—"
          : row.masking_ce_only.gradient_masking_suspected
          ? "yes"
          : "no"
      } / ` +
      `${row.evaluate_pgd.gradient_masking.gradient_masking_suspected ? "yes" : "no"} | ` +
      `${row.cascade.map((c) => `${c.member} ${pct(c.robust_accuracy)}`).join(" → ")} | ` +
      `${(full.seconds + pgd.seconds + apgdT.seconds + sq.seconds).toFixed(0)} |`,
  );
}

/** Milliseconds per image of a forward pass and of a gradient evaluation, 128 images a batch. */
async function unitCost(clf: Classifier, set: ReturnType<typeof testSet>) {
  const m = Math.min(128, set.labels.length);
  const [, h, w, c] = set.images.shape;
  const x = tf.tensor4d(set.images.data.subarray(0, m * h * w * c), [m, h, w, c]);
  const y = tf.tensor1d(set.labels.subarray(0, m), "int32");
  const oracle = makeOracle(clf, y, {});
  const time = async (f: () => tf.Tensor) => {
    await tf.tidy(f).data().then(() => undefined); // warm-up
    const t0 = performance.now();
    for (let r = 0; r < 20; r++) {
      const t = tf.tidy(f);
      await t.data();
      t.dispose();
    }
    return (performance.now() - t0) / (20 * m);
  };
  try {
    const forward = await time(() => clf.logits(x, false));
    const gradient = await time(() => oracle.evaluate(x).grad);
    return { forward, gradient, ratio: forward / gradient };
  } finally {
    oracle.dispose();
    tf.dispose([x, y]);
  }
}

if (import.meta.main) {
  const a = args(Deno.args);
  const backend = await initBackend((Deno.env.get("BACKEND") as BackendName | undefined) ?? "wasm");
  console.log(
    `\nrobust accuracy % at L-inf 8/255, first ${a.images} test images, autoattack ${a.version}, ` +
      `backend ${JSON.stringify(backend)}\n`,
  );
  console.log(
    "| model | clean | PGD-20 | APGD-CE | APGD-T | Square | worst case | PGD-20 − worst | masking warning (ensemble / CE-only white-box / PGD-20 report) | cascade | s |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  if (a.unitCost) {
    const b = await bundle(a.folders[0]);
    const clf = await loadClassifier(parseBundle(b.modelJson, b.weights, LIMITS));
    try {
      const u = await unitCost(clf, testSet(a.folders[0], 128));
      console.log(
        `unit cost per image: forward ${u.forward.toFixed(3)} ms, gradient evaluation ` +
          `${u.gradient.toFixed(3)} ms: a Square query is ${u.ratio.toFixed(2)}× an APGD step\n`,
      );
    } finally {
      clf.dispose();
    }
  }
  const jobs: [string, string, number | undefined][] = a.folders.map((f) => [f, f, undefined]);
  if (a.masked) jobs.push([`${a.masked} ×1e4 logits (masked)`, a.masked, 1e4]);
  // --images 0: the unit cost alone.
  for (const [name, spec, scale] of a.images > 0 ? jobs : []) {
    const [dir, testDir] = spec.split("@");
    const b = await bundle(dir, scale);
    const clf = await loadClassifier(parseBundle(b.modelJson, b.weights, LIMITS));
    try {
      await benchModel(
        name.split("@")[0].split("/").slice(-2).join("/"),
        clf,
        testSet(testDir ?? dir, a.images),
        a,
        scale !== undefined,
      );
    } finally {
      clf.dispose();
    }
  }
}

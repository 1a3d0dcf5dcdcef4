/**
 * Robust accuracy you can trust, per model, side by side: PGD-20 (the old `/v1/evaluate` figure),
 * each AutoAttack member alone (APGD-CE, APGD-T, Square), the ensemble's worst case per image
 * (with robust accuracy after each member of the cascade) and its gradient-masking check. All
 * in-process through `runAttack`, on the first `--images` test images of each lab folder, L-inf
 * 8/255.
 *
 * Usage:
 *   deno run -A bench/autoattack.ts [--images 200] [--version standard|fast] [--masked DIR]
 *     [--json out/autoattack.jsonl] [folder ...]
 *
 * Each folder holds `model.json`, `weights.bin`, `test_x.npy`, `test_y.npy` (a lab folder); a
 * purified model's folder is given as `MODEL_DIR@TEST_DIR`, its test files from the lab's folder. `--masked DIR` also
 * benches a deliberately masked copy of DIR's model: its last Dense layer's kernel and bias
 * multiplied by 1e4, so its logits are 1e4 × the original's (same predictions, saturated softmax:
 * cross-entropy gradients underflow to exactly 0). BACKEND picks the tensor backend (default wasm).
 *
 * @module
 */
import { runAttack } from "../src/attacks/run.ts";
import { type AttackParamsInput, AttackParamsSchema } from "../src/attacks/options.ts";
import { imagesFromNpy } from "../src/io/images.ts";
import { parseBundle } from "../src/io/model_bundle.ts";
import { parseNpy } from "../src/io/npy.ts";
import { loadClassifier } from "../src/model/load_classifier.ts";
import type { Classifier } from "../src/model/classifier.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";

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
}

function args(argv: string[]): Args {
  const a: Args = { folders: [], images: 200, version: "standard" };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === "--images") a.images = Number(v());
    else if (argv[i] === "--version") a.version = v() as Args["version"];
    else if (argv[i] === "--masked") a.masked = v();
    else if (argv[i] === "--json") a.json = v();
    else a.folders.push(argv[i]);
  }
  return a;
}

/** The bundle files of `dir`; with `scaleLast`, the last weight group of the manifest's last two
 * entries (the final Dense kernel and bias) multiplied by it. */
function bundle(dir: string, scaleLast?: number) {
  const modelJson = Deno.readFileSync(`${dir}/model.json`);
  const manifest = JSON.parse(new TextDecoder().decode(modelJson));
  const groups = manifest.weightsManifest as {
    paths: string[];
    weights: { name: string; shape: number[] }[];
  }[];
  const shards = groups.flatMap((g) => g.paths).map((name) => ({
    name,
    bytes: Deno.readFileSync(`${dir}/${name}`),
  }));
  if (scaleLast !== undefined) {
    if (shards.length !== 1) throw new Error("--masked expects a single-shard model");
    const ws = groups.flatMap((g) => g.weights);
    const count = (w: { shape: number[] }) => w.shape.reduce((p, d) => p * d, 1);
    const last = count(ws[ws.length - 1]) + count(ws[ws.length - 2]);
    const bytes = shards[0].bytes.slice();
    const f = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    for (let i = f.length - last; i < f.length; i++) f[i] *= scaleLast;
    shards[0] = { name: shards[0].name, bytes };
  }
  return { modelJson, shards };
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

async function benchModel(name: string, clf: Classifier, set: ReturnType<typeof testSet>, a: Args) {
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
    // Only CE-based white-box attacks before Square: what the check sees without APGD-T's DLR.
    masking_ce_only: (await attack(clf, set, {
      attack: "autoattack",
      version: a.version,
      eps,
      members: ["apgd-ce", "square"],
    })).report.ensemble!.gradient_masking,
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
      `${row.masking_ce_only.gradient_masking_suspected ? "yes" : "no"} | ` +
      `${row.cascade.map((c) => `${c.member} ${pct(c.robust_accuracy)}`).join(" → ")} | ` +
      `${(full.seconds + pgd.seconds + apgdT.seconds + sq.seconds).toFixed(0)} |`,
  );
}

if (import.meta.main) {
  const a = args(Deno.args);
  const backend = await initBackend((Deno.env.get("BACKEND") as BackendName | undefined) ?? "wasm");
  console.log(
    `\nrobust accuracy % at L-inf 8/255, first ${a.images} test images, autoattack ${a.version}, ` +
      `backend ${JSON.stringify(backend)}\n`,
  );
  console.log(
    "| model | clean | PGD-20 | APGD-CE | APGD-T | Square | worst case | PGD-20 − worst | masking (all / CE-only white-box) | cascade | s |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  const jobs: [string, string, number | undefined][] = a.folders.map((f) => [f, f, undefined]);
  if (a.masked) jobs.push([`${a.masked} ×1e4 logits (masked)`, a.masked, 1e4]);
  for (const [name, spec, scale] of jobs) {
    const [dir, testDir] = spec.split("@");
    const b = bundle(dir, scale);
    const clf = await loadClassifier(parseBundle(b.modelJson, b.shards, LIMITS));
    try {
      await benchModel(
        name.split("@")[0].split("/").slice(-2).join("/"),
        clf,
        testSet(testDir ?? dir, a.images),
        a,
      );
    } finally {
      clf.dispose();
    }
  }
}

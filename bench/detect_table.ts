/**
 * Detection quality per method and attack, as a markdown table: for each lab output folder
 * (`deno task lab` writes `model.json`, `weights.bin`, `extra_x.npy`, `extra_y.npy`,
 * `extra_is_poison.npy`, `trigger.json`), runs every detector in-process on the extra set and
 * prints precision, recall and F1 of its flags, AUROC of its scores, the suspected target and
 * the time taken.
 *
 * Usage:
 *   deno run -A bench/detect_table.ts [--methods spectral,strip,...] [--json] [folder ...]
 * Folders default to out/lab_badnets and out/lab_blend (make them with `deno task lab -- --attack
 * badnets --out out/lab_badnets`, and blend). A folder whose extra set holds no poison (a clean
 * lab run: `--poison-rate 0 --extra-poison-rate 0`) reports the share flagged, the false-positive
 * rate. BACKEND picks the tensor backend (default wasm).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { imagesFromNpy } from "../src/io/images.ts";
import { parseBundle } from "../src/io/model_bundle.ts";
import { parseNpy } from "../src/io/npy.ts";
import { loadClassifier } from "../src/model/load_classifier.ts";
import { type DetectParams, DetectParamsSchema } from "../src/detect/options.ts";
import { runDetect } from "../src/detect/run.ts";
import { type BackendName, initBackend } from "../src/tensor/backend.ts";

const DEFAULT_FOLDERS = ["out/lab_badnets", "out/lab_blend"];
const DEFAULT_METHODS = ["pud", "spectral", "activation-clustering", "strip", "spectre"];
const LIMITS = {
  maxModelJsonBytes: 64 << 20,
  maxWeightBytes: 1 << 30,
  maxParams: 200_000_000,
  maxLayers: 10_000,
};

function args(argv: string[]): { folders: string[]; methods: string[]; json: boolean } {
  const folders: string[] = [];
  let methods = DEFAULT_METHODS;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--methods") methods = argv[++i].split(",");
    else if (argv[i] === "--json") json = true;
    else folders.push(argv[i]);
  }
  return { folders: folders.length ? folders : DEFAULT_FOLDERS, methods, json };
}

function readNpy(path: string) {
  return parseNpy(Deno.readFileSync(path));
}

/** The attack's name for the table: the trigger type when trigger.json says, else the folder. */
function attackName(folder: string): string {
  try {
    const t = JSON.parse(Deno.readTextFileSync(`${folder}/trigger.json`));
    if (typeof t?.type === "string") return `${t.type} (${folder.split("/").pop()})`;
  } catch {
    // no trigger.json: the folder name will do
  }
  return folder.split("/").pop() ?? folder;
}

interface Row {
  attack: string;
  method: string;
  precision: number;
  recall: number;
  f1: number;
  auroc: number | null;
  recallAtP90: number | null;
  flagged: number;
  n: number;
  poisoned: number;
  target: number | null;
  seconds: number;
}

async function runFolder(folder: string, methods: string[]): Promise<Row[]> {
  const modelJson = Deno.readFileSync(`${folder}/model.json`);
  const manifest = JSON.parse(new TextDecoder().decode(modelJson));
  const shards = (manifest.weightsManifest as { paths: string[] }[]).flatMap((g) => g.paths).map(
    (name) => ({ name, bytes: Deno.readFileSync(`${folder}/${name}`) }),
  );
  const clf = await loadClassifier(parseBundle(modelJson, shards, LIMITS));
  const images = imagesFromNpy(readNpy(`${folder}/extra_x.npy`), {
    maxImages: 1_000_000,
    maxPixels: 2_000_000_000,
  });
  const labels = Int32Array.from(readNpy(`${folder}/extra_y.npy`).data as ArrayLike<number>);
  const isPoison = Uint8Array.from(
    readNpy(`${folder}/extra_is_poison.npy`).data as ArrayLike<number>,
  );
  const attack = attackName(folder);
  const rows: Row[] = [];
  try {
    for (const method of methods) {
      const params: DetectParams = DetectParamsSchema.parse({ method });
      const t0 = performance.now();
      const { report } = await runDetect(clf, images, labels, params, {
        maxCost: Number.MAX_SAFE_INTEGER,
        isPoison,
        rocPoints: 0,
      });
      const m = report.metrics!;
      rows.push({
        attack,
        method,
        precision: m.precision,
        recall: m.recall,
        f1: m.f1,
        auroc: m.auroc,
        recallAtP90: m.recall_at_precision_90,
        flagged: report.flagged,
        n: report.n,
        poisoned: m.tp + m.fn,
        target: report.suspected_target,
        seconds: (performance.now() - t0) / 1000,
      });
    }
  } finally {
    clf.dispose();
  }
  return rows;
}

function table(rows: Row[]): string {
  const f = (v: number | null) => (v === null ? "n/a" : v.toFixed(3));
  const lines = [
    "| attack | method | precision | recall | F1 | AUROC | recall at P ≥ 0.9 | flagged / poisoned " +
    "| flagged share | target | s |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.attack} | ${r.method} | ${f(r.precision)} | ${f(r.recall)} | ${f(r.f1)} | ` +
        `${f(r.auroc)} | ${f(r.recallAtP90)} | ${r.flagged} / ${r.poisoned} | ` +
        `${f(r.flagged / r.n)} | ${r.target ?? "-"} | ` +
        `${r.seconds.toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const { folders, methods, json } = args(Deno.args);
  const backend = await initBackend(
    (Deno.env.get("BACKEND") as BackendName | undefined) ?? "wasm",
  );
  const rows: Row[] = [];
  for (const folder of folders) {
    try {
      await Deno.stat(`${folder}/model.json`);
    } catch {
      console.error(`skipping ${folder}: no model.json there (run \`deno task lab\` first)`);
      continue;
    }
    rows.push(...await runFolder(folder, methods));
  }
  console.log(json ? JSON.stringify(rows, null, 2) : table(rows));
  console.error(`backend ${backend.name}, ${tf.memory().numTensors} tensors left`);
}

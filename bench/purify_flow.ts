/**
 * The whole purification flow through the HTTP API, on data the lab makes: for each attack,
 * train a backdoored Fashion-MNIST model (10% poisoned training set, a 2,000-image extra set with
 * 10% poisoned), evaluate it (`POST /v1/evaluate`: clean accuracy, attack success rate, robust
 * accuracy under PGD-20 L-inf 8/255), purify it with each schedule through
 * `POST /v1/purify/rounds` (the client, one bounded round per call), and evaluate the result.
 * With `--clean`, the same flow on a model trained without poison (it should lose ≤ 1 point).
 * Prints a markdown table and writes `summary.json` under `--out`.
 *
 *   deno run -A bench/purify_flow.ts [--attacks badnets,blend] [--schedules published,default]
 *     [--clean] [--server URL] [--out out/purify_flow] [--robust-images 1000] [--reuse]
 *     [--dataset fashion-mnist|synthetic] [--train 20000]
 *
 * `--attacks` takes rows of {@link MATRIX} by name (`--attacks matrix` runs them all: BadNets,
 * Blend, WaNet at target 4, SIG clean-label, a label-consistent patch at target 3, all-to-all
 * BadNets, BadNets at a 1% extra-set rate and target 7, Blend with an unbalanced extra set at
 * target 5) or any `--attack` name of the lab. Each purified row also reports the suspected
 * classes and their evidence, and the detection AUROC of the final round's scores (decoded from
 * the state the client keeps).
 *
 * `--schedules` takes preset names and/or paths of schedule JSON files (as GET
 * /v1/purify/schedule returns them, edited).
 *
 * Without `--server` it starts the service on a free loopback port (its log: OUT/server.log).
 * `--reuse` keeps lab folders that already exist (same flags, same seed: same files).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { readBundleDir } from "../client/bundle_files.ts";
import { evaluateModel, readEvalSet } from "../client/evaluate.ts";
import { DEFAULT_RETRY } from "../client/http.ts";
import { startLocalService } from "../client/local_service.ts";
import { runPurification } from "../client/purify.ts";
import { appendBundle } from "../client/bundle_files.ts";
import { postWithRetry } from "../client/http.ts";
import { auroc } from "../src/metrics/detection.ts";
import { parseNpy } from "../src/io/npy.ts";
import { base64ToF32 } from "../src/purify/codec.ts";

/** Lab flags of each named row. */
const MATRIX: Record<string, string[]> = {
  badnets: ["--attack", "badnets"],
  blend: ["--attack", "blend"],
  wanet: ["--attack", "wanet", "--target", "4"],
  sig: [
    "--attack",
    "sig",
    "--mode",
    "clean-label",
    "--poison-rate",
    "0.08",
    "--extra-poison-rate",
    "0.05",
  ],
  lcpatch: [
    "--attack",
    "badnets",
    "--mode",
    "clean-label",
    "--target",
    "3",
    "--poison-rate",
    "0.08",
    "--extra-poison-rate",
    "0.05",
  ],
  a2a: ["--attack", "badnets", "--mode", "all-to-all"],
  bn1pct: ["--attack", "badnets", "--target", "7", "--extra-poison-rate", "0.01"],
  unbalanced: ["--attack", "blend", "--target", "5", "--extra-imbalance", "3"],
};

const { values: a } = parseArgs({
  options: {
    attacks: { type: "string", default: "badnets,blend" },
    schedules: { type: "string", default: "published,default" },
    clean: { type: "boolean", default: false },
    server: { type: "string" },
    out: { type: "string", default: "out/purify_flow" },
    "robust-images": { type: "string", default: "1000" },
    reuse: { type: "boolean", default: false },
    dataset: { type: "string", default: "fashion-mnist" },
    train: { type: "string", default: "20000" },
    seed: { type: "string", default: "1" },
  },
});

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();

interface Figures {
  clean_accuracy: number | null;
  attack_success_rate: number | null;
  /** Clean non-target test images predicted as the target: the floor of the ASR. */
  clean_target_rate: number | null;
  robust_accuracy: number | null;
}

interface Row {
  lab: string;
  model: string;
  figures: Figures & { floor_by_source?: (number | null)[] };
  seconds?: number;
  rounds?: number;
  flagged?: number;
  precision?: number | null;
  recall?: number | null;
  auroc?: number | null;
  suspects?: number[];
  all_to_all?: boolean;
  evidence?: unknown;
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

/** Runs the lab into `dir` (skipped with --reuse when it is already there). */
async function lab(dir: string, flags: string[]): Promise<void> {
  if (a.reuse && await exists(join(dir, "lab.json"))) {
    console.error(`lab: reusing ${dir}`);
    return;
  }
  const t0 = performance.now();
  const out = await new Deno.Command(deno, {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "scripts/lab.ts",
      "--dataset",
      a.dataset!,
      "--train",
      a.train!,
      "--seed",
      a.seed!,
      "--out",
      dir,
      ...flags,
    ],
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`lab failed for ${dir}`);
  console.error(`lab: ${dir} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

/** Clean accuracy, ASR (test_bd_x/test_bd_y) and robust accuracy of the model in `modelDir`. */
async function evaluate(server: string, modelDir: string, labDir: string): Promise<Figures> {
  const robust = { eps: 8 / 255, steps: 20, max_images: Number(a["robust-images"]), seed: 0 };
  const r = await evaluateModel(
    server,
    await readBundleDir(modelDir),
    await readEvalSet(labDir),
    { robust },
    DEFAULT_RETRY,
  );
  return {
    clean_accuracy: r.clean_accuracy as number | null,
    attack_success_rate: r.attack_success_rate as number | null,
    clean_target_rate: (r.clean_target_rate ?? null) as number | null,
    robust_accuracy: r.robust_accuracy as number | null,
  };
}

async function detection(labDir: string, flagged: number[]) {
  const truth = parseNpy(await Deno.readFile(join(labDir, "extra_is_poison.npy")))
    .data as Uint8Array;
  const poisoned = truth.reduce((s, v) => s + v, 0);
  const hits = flagged.filter((i) => truth[i] === 1).length;
  return {
    precision: flagged.length ? hits / flagged.length : null,
    recall: poisoned ? hits / poisoned : null,
  };
}

/**
 * All-to-all floor: per source class y, the share of clean test images of y the model already
 * predicts as (y + 1) mod K (through `POST /v1/predict`), and their mean.
 */
async function allToAllFloor(server: string, modelDir: string, labDir: string) {
  const x = await Deno.readFile(join(labDir, "test_x.npy"));
  const y = parseNpy(await Deno.readFile(join(labDir, "test_y.npy"))).data as ArrayLike<number>;
  const model = await readBundleDir(modelDir);
  const res = await postWithRetry(`${server}/v1/predict`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", new Blob([x as Uint8Array<ArrayBuffer>]), "test_x.npy");
    f.append("params", JSON.stringify({ top_k: 1 }));
    return f;
  }, DEFAULT_RETRY);
  const body = await res.json() as {
    predictions: { class: number }[];
    model: { num_classes: number };
  };
  const k = body.model.num_classes;
  const hits = new Array<number>(k).fill(0), seen = new Array<number>(k).fill(0);
  body.predictions.forEach((p, i) => {
    seen[y[i]]++;
    if (p.class === (y[i] + 1) % k) hits[y[i]]++;
  });
  const bySource = seen.map((n, c) => (n ? hits[c] / n : null));
  const total = hits.reduce((a, b) => a + b, 0) / Math.max(1, y.length);
  return { total, bySource };
}

/** Suspects, evidence and the AUROC of the final scores, from the client's saved state. */
async function fromState(outDir: string, labDir: string) {
  const st = JSON.parse(await Deno.readTextFile(join(outDir, "checkpoint", "state.json")));
  const truth = parseNpy(await Deno.readFile(join(labDir, "extra_is_poison.npy")))
    .data as Uint8Array;
  const n = st.dataset.n;
  const scores = st.scores ? base64ToF32(st.scores, n, "scores") : null;
  const hasBoth = truth.some((v) => v === 1) && truth.some((v) => v === 0);
  return {
    auroc: scores && hasBoth ? auroc(scores, Uint8Array.from(truth)) : null,
    suspects: (st.suspect?.classes ?? []) as number[],
    all_to_all: Boolean(st.suspect?.all_to_all),
    evidence: st.suspect?.per_class ?? null,
  };
}

const pct = (v: number | null | undefined) => typeof v === "number" ? (100 * v).toFixed(2) : "—";

async function main() {
  await Deno.mkdir(a.out!, { recursive: true });
  const started = a.server
    ? undefined
    : await startLocalService({ logPath: join(a.out!, "server.log"), timeoutMs: 120_000 });
  const server = a.server ?? started!.url;
  const rows: Row[] = [];
  const names = a.attacks === "matrix"
    ? Object.keys(MATRIX)
    : a.attacks!.split(",").filter(Boolean);
  const labs: [string, string[]][] = names.map((atk) => [atk, MATRIX[atk] ?? ["--attack", atk]]);
  if (a.clean) labs.push(["clean", ["--poison-rate", "0", "--extra-poison-rate", "0"]]);
  try {
    for (const [name, flags] of labs) {
      const labDir = join(a.out!, `lab_${name}`);
      await lab(labDir, flags);
      const allToAll = (MATRIX[name] ?? []).includes("all-to-all");
      const withFloor = async (modelDir: string) => {
        const f: Row["figures"] = await evaluate(server, modelDir, labDir);
        if (allToAll) {
          const floor = await allToAllFloor(server, modelDir, labDir);
          f.clean_target_rate = floor.total;
          f.floor_by_source = floor.bySource;
        }
        return f;
      };
      const infected = await withFloor(labDir);
      rows.push({
        lab: name,
        model: name === "clean" ? "clean model" : "infected",
        figures: infected,
      });
      console.error(`${name} infected: ${JSON.stringify(infected)}`);
      const schedules = name === "clean" ? ["default"] : a.schedules!.split(",").filter(Boolean);
      for (const schedule of schedules) {
        const label = schedule.endsWith(".json")
          ? schedule.split("/").pop()!.replace(/\.json$/, "")
          : schedule;
        const outDir = join(a.out!, `purified_${name}_${label}`);
        await Deno.remove(outDir, { recursive: true }).catch(() => {});
        const t0 = performance.now();
        const outcome = await runPurification({
          server,
          modelDir: labDir,
          images: join(labDir, "extra_x.npy"),
          labels: join(labDir, "extra_y.npy"),
          out: outDir,
          params: {
            schedule: schedule.endsWith(".json")
              ? JSON.parse(await Deno.readTextFile(schedule))
              : schedule,
            seed: Number(a.seed),
          },
          maxRounds: 10_000,
          resume: false,
        });
        const seconds = (performance.now() - t0) / 1000;
        const flagged = (outcome.finalReport.flagged_indices ?? []) as number[];
        const figures = await withFloor(join(outDir, "purified"));
        const row: Row = {
          lab: name,
          model: `${label} schedule`,
          figures,
          seconds,
          rounds: outcome.rounds,
          flagged: flagged.length,
          ...(name === "clean" ? {} : await detection(labDir, flagged)),
          ...await fromState(outDir, labDir),
        };
        rows.push(row);
        console.error(`${name} ${schedule}: ${JSON.stringify(row)}`);
        await Deno.writeTextFile(join(a.out!, "summary.json"), JSON.stringify(rows, null, 2));
      }
    }
  } finally {
    await started?.stop();
  }
  const backend = await Deno.readTextFile(join(a.out!, `lab_${labs[0][0]}`, "lab.json"))
    .then((t) => JSON.parse(t).backend).catch(() => "?");
  console.log(
    `\nFashion-MNIST flow through HTTP (lab seed ${a.seed}, train ${a.train}, robust: PGD-20 ` +
      `L-inf 8/255 on ${a["robust-images"]} test images, backend ${backend})\n`,
  );
  console.log(
    "| data | model | clean acc % | ASR % (floor) | robust acc % | rounds | time s | flagged (P / R) | AUROC | suspects |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---|---:|---|");
  for (const r of rows) {
    const f = r.figures;
    const det = r.flagged === undefined
      ? ""
      : r.precision === undefined
      ? String(r.flagged)
      : `${r.flagged} (${pct(r.precision)} / ${pct(r.recall)})`;
    console.log(
      `| ${r.lab} | ${r.model} | ${pct(f.clean_accuracy)} | ${pct(f.attack_success_rate)} (${
        pct(f.clean_target_rate)
      }) | ${pct(f.robust_accuracy)} | ${r.rounds ?? ""} | ${
        r.seconds === undefined ? "" : r.seconds.toFixed(0)
      } | ${det} | ${r.auroc == null ? "" : r.auroc.toFixed(3)} | ${
        r.suspects === undefined
          ? ""
          : r.all_to_all
          ? "all-to-all"
          : r.suspects.length
          ? r.suspects.join(", ")
          : "none"
      } |`,
    );
  }
}

await main();

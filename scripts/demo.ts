/**
 * The first ten minutes: the whole product from one command.
 *
 *   deno task demo [--server URL] [--out out/demo] [--dataset fashion-mnist|synthetic] [--quick]
 *
 * 1. starts the service on a free loopback port (or uses `--server URL`);
 * 2. builds a backdoored classifier with the lab (Fashion-MNIST from Debian's
 *    `dataset-fashion-mnist` when installed, else the synthetic shapes set; it says which);
 * 3. through the HTTP API: detects poisoned images in the extra set (`/v1/detect`, PUD, with the
 *    ground truth so precision, recall and the ROC curve are reported), attacks the infected model
 *    (`/v1/attacks`, PGD), purifies it round by round with a progress bar (`/v1/purify/rounds`,
 *    the client) and evaluates every round (`/v1/evaluate`);
 * 4. prints a before/after table and writes the report (`report.html`, self-contained, and
 *    `report.json`) under `--out`.
 *
 * Sizes are chosen to finish within 10 minutes on a 2-core CPU with the wasm backend. `--quick`
 * shrinks everything to a synthetic run of seconds (what the browser test uses), and says first
 * that it is a smoke test whose figures mean nothing ({@link QUICK_NOTICE}).
 */
import { pct } from "../client/html.ts";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { appendBundle, readBundleDir } from "../client/bundle_files.ts";
import { DEFAULT_RETRY, postWithRetry } from "../client/http.ts";
import { startLocalService } from "../client/local_service.ts";
import { type PurifyOutcome, runPurification } from "../client/purify.ts";
import type { LabOptionsInput } from "../src/lab/lab.ts";
import { DEFAULT_FASHION_MNIST_DIR } from "../src/lab/fashion_mnist.ts";

export interface DemoOptions {
  /** A running service; absent: one is started on a free loopback port. */
  server?: string;
  out: string;
  /** Default: fashion-mnist when its files are installed, else synthetic. */
  dataset?: "fashion-mnist" | "synthetic";
  /** A synthetic run of seconds, for tests. */
  quick?: boolean;
  /** Lines of progress (default: console.log). */
  log?: (line: string) => void;
  /** Passed to the client (progress bar and retries on stderr); default false. */
  quiet?: boolean;
}

export interface DemoResult {
  dataset: "fashion-mnist" | "synthetic";
  outcome: PurifyOutcome;
  attack: { before: AttackFigures; after: AttackFigures };
  seconds: Record<string, number>;
  reportPath: string;
  table: string;
}

interface AttackFigures {
  success_rate: number;
  robust_accuracy: number;
  n: number;
}

/** Whether Debian's Fashion-MNIST files are where the lab looks for them. */
export async function hasFashionMnist(dir = DEFAULT_FASHION_MNIST_DIR): Promise<boolean> {
  for (const name of ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]) {
    if (await Deno.stat(join(dir, name)).then(() => true, () => false)) return true;
  }
  return false;
}

/**
 * Lab sizes. Fashion-MNIST: 8,000 training images (10% poisoned with a 3×3 patch, all-to-one to
 * class 0) for 2 epochs, a 1,000-image extra set (10% poisoned) and 1,000 test images: about a
 * minute of training on 2 cores, and the backdoor takes (ASR above 95%).
 */
function labOptions(dataset: "fashion-mnist" | "synthetic", quick: boolean): LabOptionsInput {
  if (quick) {
    return {
      dataset: "synthetic",
      trainSize: 600,
      extraSize: 200,
      testSize: 200,
      epochs: 15,
      syntheticSize: 12,
      syntheticClasses: 4,
      extraPoisonRate: 0.1,
    };
  }
  if (dataset === "synthetic") {
    return { dataset, trainSize: 4000, extraSize: 1000, testSize: 1000, epochs: 4 };
  }
  return { dataset, trainSize: 8000, extraSize: 1000, testSize: 1000, epochs: 2 };
}

async function attackFigures(
  server: string,
  modelDir: string,
  labDir: string,
  n: number,
  params: Record<string, unknown>,
): Promise<AttackFigures> {
  const model = await readBundleDir(modelDir);
  const { parseNpy, encodeNpy } = await import("../src/io/npy.ts");
  const x = parseNpy(await Deno.readFile(join(labDir, "test_x.npy")));
  const y = parseNpy(await Deno.readFile(join(labDir, "test_y.npy")));
  const k = Math.min(n, x.shape[0]);
  const per = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const xs = encodeNpy({
    dtype: "uint8",
    shape: [k, ...x.shape.slice(1)],
    data: (x.data as Uint8Array).subarray(0, k * per),
  });
  const labels = Array.from((y.data as Int32Array).subarray(0, k));
  const res = await postWithRetry(`${server}/v1/attacks?format=json`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", new Blob([xs as Uint8Array<ArrayBuffer>]), "x.npy");
    f.append("labels", JSON.stringify(labels));
    f.append("params", JSON.stringify(params));
    return f;
  }, { ...DEFAULT_RETRY, token: Deno.env.get("API_TOKEN") });
  const r = await res.json();
  return { success_rate: r.success_rate, robust_accuracy: r.robust_accuracy, n: r.n };
}

/** The printed before/after table. */
export function demoTable(r: Omit<DemoResult, "table" | "reportPath">): string {
  const b = r.outcome.points[0] ?? { round: 0 };
  const a = r.outcome.points.at(-1) ?? { round: 0 };
  const d = r.outcome.report?.detection;
  const pf = r.outcome.report?.summary.purification_flags as
    | { flagged: number; precision?: number | null; recall?: number | null }
    | undefined;
  const rows: [string, string, string][] = [
    ["clean accuracy", pct(b.clean_accuracy), pct(a.clean_accuracy)],
    ["attack success rate (backdoor)", pct(b.attack_success_rate), pct(a.attack_success_rate)],
    ["robust accuracy (PGD-10, 8/255)", pct(b.robust_accuracy), pct(a.robust_accuracy)],
    [
      `PGD success rate (/v1/attacks, ${r.attack.before.n} images)`,
      pct(r.attack.before.success_rate),
      pct(r.attack.after.success_rate),
    ],
  ];
  const w0 = Math.max(...rows.map((x) => x[0].length), 30);
  const line = (c: string[]) => `${c[0].padEnd(w0)}  ${c[1].padStart(9)}  ${c[2].padStart(9)}`;
  const out = [line(["", "before", "after"]), ...rows.map(line)];
  if (d) {
    const m = d.metrics ?? {};
    out.push(
      `detection (${d.method}, extra set of ${d.n}): flagged ${d.flagged}, precision ${
        pct(m.precision)
      }, recall ${pct(m.recall)}, AUROC ${typeof m.auroc === "number" ? m.auroc.toFixed(3) : "—"}`,
    );
  }
  if (pf) {
    out.push(
      `purification: ${r.outcome.rounds} rounds${r.outcome.done ? "" : " (not finished)"}, ` +
        `flagged ${pf.flagged}` +
        (pf.precision !== undefined && pf.precision !== null
          ? ` (precision ${pct(pf.precision)}, recall ${pct(pf.recall)})`
          : ""),
    );
  }
  const { total, ...phases } = r.seconds;
  out.push(
    `wall time: ${total?.toFixed(0)} s (${
      Object.entries(phases).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(", ")
    })`,
  );
  return out.join("\n");
}

/** What `--quick` says first: what it is for, and that its figures are not results. */
export const QUICK_NOTICE =
  "--quick: a smoke test of a few seconds on a tiny synthetic set (600 training images of " +
  "12×12 shapes, a schedule of 8 steps) that checks every endpoint answers; its figures mean " +
  "nothing. For real figures run `deno task demo` without --quick (about 5 minutes on 2 cores).";

/** Runs the whole demo; see the module doc. */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  if (o.quick) log(QUICK_NOTICE);
  const t0 = performance.now();
  const seconds: Record<string, number> = {};
  const lap = (k: string, since: number) =>
    seconds[k] = Math.round((performance.now() - since) / 100) / 10;
  await Deno.mkdir(o.out, { recursive: true });
  const dataset = o.quick
    ? "synthetic"
    : o.dataset ?? (await hasFashionMnist() ? "fashion-mnist" : "synthetic");
  log(
    dataset === "fashion-mnist"
      ? `dataset: Fashion-MNIST from ${DEFAULT_FASHION_MNIST_DIR}`
      : `dataset: synthetic shapes made by src/lab/synthetic.ts` +
        (o.dataset || o.quick ? "" : ` (Fashion-MNIST not found in ${DEFAULT_FASHION_MNIST_DIR}; ` +
          "apt-get install dataset-fashion-mnist for the real one)"),
  );

  // The service starts (seconds: wasm compile, warm-up) while the lab trains.
  const service = o.server ? undefined : startLocalService({
    logPath: join(o.out, "server.log"),
  });
  service?.catch(() => {});
  try {
    const tLab = performance.now();
    const labDir = join(o.out, "lab");
    const [{ initBackend }, { runLab, writeLabOutputs }] = await Promise.all([
      import("../src/tensor/backend.ts"),
      import("../src/lab/lab.ts"),
    ]);
    const { name: backendName } = await initBackend(
      (Deno.env.get("BACKEND") as "wasm" | "cpu" | undefined) ?? "wasm",
    );
    const opts = labOptions(dataset, o.quick ?? false);
    log(`lab: training a backdoored CNN (${JSON.stringify(opts)}, backend ${backendName})`);
    const lab = await runLab(opts, (l) => log(`  ${l}`));
    await writeLabOutputs(lab, labDir);
    lap("lab", tLab);
    const target = lab.report.settings.target;

    const server = o.server?.replace(/\/$/, "") ?? (await service!).url;
    log(`service: ${server}${service ? ` (log ${join(o.out, "server.log")})` : ""}`);

    const attackParams = { attack: "pgd", eps: 8 / 255, steps: 10 };
    const attackImages = o.quick ? 32 : 200;
    const tAtk = performance.now();
    const before = await attackFigures(server, labDir, labDir, attackImages, attackParams);
    log(
      `attack (infected): PGD-10 L-inf 8/255 on ${before.n} test images: success ` +
        `${pct(before.success_rate)}, robust accuracy ${pct(before.robust_accuracy)}`,
    );
    lap("attack", tAtk);

    const tPur = performance.now();
    const purifyOut = join(o.out, "purify");
    await Deno.remove(purifyOut, { recursive: true }).catch(() => {});
    await Deno.mkdir(purifyOut, { recursive: true });
    log("detect, then purify round by round (each round evaluated):");
    const outcome = await runPurification({
      server,
      modelDir: labDir,
      images: join(labDir, "extra_x.npy"),
      labels: join(labDir, "extra_y.npy"),
      isPoison: join(labDir, "extra_is_poison.npy"),
      out: purifyOut,
      // Short rounds: more points on the chart, and the progress bar moves.
      params: o.quick
        ? { schedule: quickSchedule(), max_steps: 3 }
        : { schedule: "default", max_ms: 20_000 },
      detect: o.quick
        ? { method: "pud", finetune_epochs: 1, max_steps: 4, pgd_steps: 3, flag_fraction: 0.1 }
        : { method: "pud", finetune_epochs: 1 },
      evalDir: labDir,
      target,
      robust: { max_images: o.quick ? 32 : 200, steps: 10 },
      samples: 8,
      sampleAttack: attackParams,
      token: Deno.env.get("API_TOKEN"),
      maxRounds: o.quick ? 20 : 200,
      resume: false,
      quiet: o.quiet,
      title: `purifier demo: ${dataset}, ${lab.trigger.type} backdoor`,
      inputs: {
        dataset,
        trigger: lab.trigger,
        lab: {
          ...lab.report.counts,
          epochs: lab.report.settings.epochs,
          clean_accuracy: lab.report.cleanAccuracy,
          attack_success_rate: lab.report.attackSuccessRate,
        },
      },
      classNames: lab.report.classNames,
    });
    lap("client", tPur);
    for (const k of ["detect", "rounds", "evaluate", "samples"]) {
      const v = outcome.report?.timings[k];
      if (typeof v === "number") seconds[k] = v;
    }
    delete seconds.client;

    const tAtk2 = performance.now();
    const after = await attackFigures(
      server,
      join(purifyOut, "purified"),
      labDir,
      attackImages,
      attackParams,
    );
    seconds.attack = Math.round((seconds.attack + (performance.now() - tAtk2) / 1000) * 10) / 10;
    lap("total", t0);
    const partial = { dataset, outcome, attack: { before, after }, seconds } as const;
    const table = demoTable(partial);
    return { ...partial, reportPath: outcome.reportPath!, table };
  } finally {
    if (service) await (await service.catch(() => undefined))?.stop();
  }
}

/** A schedule of a few seconds for the synthetic quick run. */
function quickSchedule(): Record<string, unknown> {
  return {
    name: "quick",
    initial_clean: { rule: "outside_suspect" },
    stages: [
      {
        kind: "train",
        name: "probe",
        steps: 2,
        losses: { clean: 1, adversarial: 1 },
        pgd: { eps: 6 / 255, steps: 2 },
        revert: true,
        rescore: { score: "consistency", scope: "suspect" },
      },
      {
        kind: "train",
        name: "purge",
        steps: 6,
        losses: { clean: 1, adversarial: 1, unlearn: 0.5 },
        pgd: { eps: 6 / 255, steps: 2 },
      },
    ],
  };
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
    options: {
      server: { type: "string" },
      out: { type: "string", default: "out/demo" },
      dataset: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (a.help || (a.dataset && a.dataset !== "fashion-mnist" && a.dataset !== "synthetic")) {
    console.log(
      "usage: deno task demo [--server URL] [--out out/demo] " +
        "[--dataset fashion-mnist|synthetic] [--quick]",
    );
    Deno.exit(a.help ? 0 : 2);
  }
  const r = await runDemo({
    server: a.server,
    out: a.out!,
    dataset: a.dataset as DemoOptions["dataset"],
    quick: a.quick,
  });
  console.log(
    `\n${r.table}\n\nreport: ${r.reportPath}\n        ${r.reportPath.replace(/html$/, "json")}`,
  );
  if (a.quick) console.log("\n(--quick: a smoke test; these figures mean nothing)");
}

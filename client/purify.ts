/**
 * The round-iterating client: runs Progressive Unified Defense to completion through
 * `POST /v1/purify/rounds`, one bounded round per call, saving a checkpoint (model + state) after
 * every round so a crash or a lost connection resumes where it stopped. Optionally evaluates each
 * round's model (`POST /v1/evaluate`) and writes a JSON and a self-contained HTML report.
 *
 *   deno task purify --server http://localhost:8000 --model DIR --images x.npy --labels y.npy \
 *     --out OUT [--schedule default|published|FILE.json] [--eval DIR] [--target 0] [--token T]
 *
 * `--eval DIR` takes a folder with test_x.npy, test_y.npy and optionally test_bd_x.npy (triggered
 * images of non-target classes) with test_bd_y.npy (their backdoor targets), as the lab writes
 * them. `--robust JSON` adds robust accuracy to each evaluation (e.g. '{"max_images":500}' for
 * PGD-20 at 8/255 on the first 500 test images).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  appendBundle,
  type BundleOnDisk,
  partBytes,
  partFiles,
  readBundleDir,
  writeAtomic,
  writeBundleDir,
} from "./bundle_files.ts";
import { DEFAULT_RETRY, postWithRetry, type RetryOptions } from "./http.ts";
import { reportHtml, type RoundPoint } from "./report_html.ts";

export interface PurifyJob {
  server: string;
  modelDir: string;
  images: string;
  labels: string;
  out: string;
  /** Extra purification params (JSON object), e.g. `{ "schedule": "published", "seed": 1 }`. */
  params: Record<string, unknown>;
  evalDir?: string;
  /** Backdoor target for `--eval` when the folder has no test_bd_y.npy. */
  target?: number;
  /**
   * Robust-accuracy options sent to `/v1/evaluate` with `--eval` (e.g. `{ "steps": 20,
   * "max_images": 500 }`); absent: robust accuracy is not measured.
   */
  robust?: Record<string, unknown>;
  token?: string;
  maxRounds: number;
  resume: boolean;
  quiet?: boolean;
  retry?: Partial<RetryOptions>;
}

export interface PurifyOutcome {
  rounds: number;
  done: boolean;
  points: RoundPoint[];
  finalReport: Record<string, unknown>;
  outDir: string;
}

interface Checkpoint {
  round: number;
  done: boolean;
  points: RoundPoint[];
  lastReport: Record<string, unknown>;
}

function bar(progress: number, width = 30): string {
  const n = Math.max(0, Math.min(width, Math.round(progress * width)));
  return `[${"#".repeat(n)}${".".repeat(width - n)}] ${(progress * 100).toFixed(0).padStart(3)}%`;
}

async function evaluateRound(
  job: PurifyJob,
  model: BundleOnDisk,
  retry: RetryOptions,
): Promise<Omit<RoundPoint, "round">> {
  const dir = job.evalDir!;
  const testX = await Deno.readFile(join(dir, "test_x.npy"));
  const testY = await Deno.readFile(join(dir, "test_y.npy"));
  const optional = (name: string) => Deno.readFile(join(dir, name)).catch(() => undefined);
  const bdX = await optional("test_bd_x.npy");
  const bdY = await optional("test_bd_y.npy");
  const params: Record<string, unknown> = {};
  // test_bd_y.npy holds each triggered image's backdoor target (the lab writes it); without it
  // the target comes from --target.
  const withBackdoor = bdX !== undefined && (bdY !== undefined || job.target !== undefined);
  if (withBackdoor) params.backdoor = job.target === undefined ? {} : { target: job.target };
  if (job.robust) params.attack = job.robust;
  const res = await postWithRetry(`${job.server}/v1/evaluate`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", new Blob([testX as Uint8Array<ArrayBuffer>]), "test_x.npy");
    f.append("labels", new Blob([testY as Uint8Array<ArrayBuffer>]), "test_y.npy");
    if (withBackdoor) {
      f.append("backdoor_images", new Blob([bdX as Uint8Array<ArrayBuffer>]), "test_bd_x.npy");
      if (bdY && job.target === undefined) {
        f.append("backdoor_labels", new Blob([bdY as Uint8Array<ArrayBuffer>]), "test_bd_y.npy");
      }
    }
    f.append("params", JSON.stringify(params));
    return f;
  }, retry);
  const r = await res.json();
  return {
    clean_accuracy: r.clean_accuracy,
    attack_success_rate: r.attack_success_rate ?? undefined,
    robust_accuracy: r.robust_accuracy ?? undefined,
  };
}

/** Runs (or resumes) a whole purification; returns when the schedule is done or rounds run out. */
export async function runPurification(job: PurifyJob): Promise<PurifyOutcome> {
  const retry: RetryOptions = {
    ...DEFAULT_RETRY,
    token: job.token,
    onRetry: (a, why, ms) => {
      if (!job.quiet) console.error(`\nretry ${a} in ${ms} ms: ${why}`);
    },
    ...job.retry,
  };
  const ckDir = join(job.out, "checkpoint");
  const images = await Deno.readFile(job.images);
  const labels = await Deno.readFile(job.labels);
  let model: BundleOnDisk;
  let state: Uint8Array | undefined;
  let ck: Checkpoint = { round: 0, done: false, points: [], lastReport: {} };
  const resumed = job.resume && await Deno.stat(join(ckDir, "checkpoint.json")).then(
    () => true,
    () => false,
  );
  if (resumed) {
    ck = JSON.parse(await Deno.readTextFile(join(ckDir, "checkpoint.json")));
    model = await readBundleDir(join(ckDir, "model"));
    state = await Deno.readFile(join(ckDir, "state.json"));
    if (!job.quiet) console.error(`resuming after round ${ck.round} from ${ckDir}`);
  } else {
    model = await readBundleDir(job.modelDir);
    if (job.evalDir) {
      ck.points.push({ round: 0, stage: "infected", ...await evaluateRound(job, model, retry) });
    }
  }

  while (!ck.done && ck.round < job.maxRounds) {
    const t0 = performance.now();
    const res = await postWithRetry(`${job.server}/v1/purify/rounds`, () => {
      const f = new FormData();
      appendBundle(f, model);
      f.append("images", new Blob([images as Uint8Array<ArrayBuffer>]), "images.npy");
      f.append("labels", new Blob([labels as Uint8Array<ArrayBuffer>]), "labels.npy");
      f.append("params", JSON.stringify(job.params));
      if (state) f.append("state", new Blob([state as Uint8Array<ArrayBuffer>]), "state.json");
      return f;
    }, retry);
    const form = await res.formData();
    const report = JSON.parse(new TextDecoder().decode(await partBytes(form, "report")));
    model = {
      modelJson: await partBytes(form, "model"),
      weights: await partFiles(form, "weights"),
    };
    state = await partBytes(form, "state");
    ck.round++;
    ck.done = Boolean(report.done);
    ck.lastReport = report;
    const point: RoundPoint = { round: ck.round, stage: report.stage };
    if (job.evalDir) Object.assign(point, await evaluateRound(job, model, retry));
    ck.points.push(point);
    // Model and state first, checkpoint.json last: a crash in between resumes from the old round.
    await writeBundleDir(join(ckDir, "model"), model);
    await writeAtomic(join(ckDir, "state.json"), state);
    await writeAtomic(join(ckDir, "checkpoint.json"), JSON.stringify(ck));
    await Deno.writeTextFile(join(job.out, "rounds.jsonl"), JSON.stringify(report) + "\n", {
      append: true,
    });
    if (!job.quiet) {
      const figs = job.evalDir
        ? ` acc ${fmtPct(point.clean_accuracy)} asr ${fmtPct(point.attack_success_rate)} rob ${
          fmtPct(point.robust_accuracy)
        }`
        : "";
      Deno.stderr.writeSync(new TextEncoder().encode(
        `\r${bar(Number(report.progress ?? 0))} round ${ck.round} stage ${
          report.stage ?? "?"
        }${figs} (${((performance.now() - t0) / 1000).toFixed(1)} s)   `,
      ));
    }
  }
  if (!job.quiet) console.error("");
  await writeBundleDir(join(job.out, "purified"), model);
  const flagged = ck.lastReport.flagged_indices ?? [];
  await writeAtomic(join(job.out, "flagged.json"), JSON.stringify(flagged));
  const summary = {
    rounds: ck.round,
    done: ck.done,
    first: ck.points[0],
    last: ck.points.at(-1),
  };
  await writeAtomic(
    join(job.out, "report.json"),
    JSON.stringify(
      { summary, settings: job.params, points: ck.points, last: ck.lastReport },
      null,
      2,
    ),
  );
  await writeAtomic(
    join(job.out, "report.html"),
    reportHtml({
      title: "purifier: purification report",
      settings: { server: job.server, model: job.modelDir, images: job.images, ...job.params },
      summary: {
        rounds: ck.round,
        done: ck.done,
        flagged: Array.isArray(flagged) ? flagged.length : "?",
        ...(ck.points.length ? { before: ck.points[0], after: ck.points.at(-1) } : {}),
      },
      points: ck.points,
    }),
  );
  return {
    rounds: ck.round,
    done: ck.done,
    points: ck.points,
    finalReport: ck.lastReport,
    outDir: job.out,
  };
}

function fmtPct(v: number | undefined): string {
  return typeof v === "number" ? `${(v * 100).toFixed(1)}%` : "—";
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    options: {
      server: { type: "string", default: "http://127.0.0.1:8000" },
      model: { type: "string" },
      images: { type: "string" },
      labels: { type: "string" },
      out: { type: "string" },
      schedule: { type: "string" },
      params: { type: "string" },
      eval: { type: "string" },
      target: { type: "string" },
      robust: { type: "string" },
      token: { type: "string", default: Deno.env.get("API_TOKEN") },
      "max-rounds": { type: "string", default: "1000" },
      "no-resume": { type: "boolean", default: false },
    },
  });
  if (!a.model || !a.images || !a.labels || !a.out) {
    console.error(
      "usage: deno task purify --server URL --model DIR --images x.npy --labels y.npy --out DIR " +
        "[--schedule default|published|FILE.json] [--params JSON] [--eval DIR [--target N] " +
        "[--robust JSON]]",
    );
    Deno.exit(2);
  }
  const params: Record<string, unknown> = a.params ? JSON.parse(a.params) : {};
  if (a.schedule) {
    params.schedule = a.schedule.endsWith(".json")
      ? JSON.parse(await Deno.readTextFile(a.schedule))
      : a.schedule;
  }
  const out = await runPurification({
    server: a.server!.replace(/\/$/, ""),
    modelDir: a.model,
    images: a.images,
    labels: a.labels,
    out: a.out,
    params,
    evalDir: a.eval,
    target: a.target === undefined ? undefined : Number(a.target),
    robust: a.robust ? JSON.parse(a.robust) : undefined,
    token: a.token,
    maxRounds: Number(a["max-rounds"]),
    resume: !a["no-resume"],
  });
  console.log(
    JSON.stringify({
      rounds: out.rounds,
      done: out.done,
      last: out.points.at(-1),
      out: out.outDir,
    }),
  );
}

/**
 * The round-iterating client: runs Progressive Unified Defense to completion through
 * `POST /v1/purify/rounds`, one bounded round per call, saving a checkpoint (model + state) after
 * every round so a crash or a lost connection resumes where it stopped. Optionally evaluates each
 * round's model (`POST /v1/evaluate`) and writes a JSON and a self-contained HTML report.
 *
 *   deno task purify --server http://localhost:8000 --model DIR --images x.npy --labels y.npy \
 *     --out OUT [--schedule default|published|FILE.json] [--eval DIR] [--target 0] [--token T]
 *
 * The report (`report.html`, self-contained, and the same figures in `report.json`) shows the
 * figures per round, the detection step (`--detect JSON`, e.g. '{"method":"pud"}', with
 * `--is-poison FILE` for precision, recall and the ROC curve), a grid of sample test images
 * (clean, triggered, PGD) predicted before and after (`--samples N`, default 8 with `--eval`),
 * timings and the backend.
 *
 * `--eval DIR` takes a folder with test_x.npy, test_y.npy and optionally test_bd_x.npy (triggered
 * images of non-target classes) with test_bd_y.npy (their backdoor targets), as the lab writes
 * them. `--robust JSON` adds robust accuracy to each evaluation (e.g. '{"max_images":500}' for
 * PGD-20 at 8/255 on the first 500 test images).
 *
 * Where it is: a progress bar that never goes backwards, with elapsed and estimated remaining
 * time, ticking while a round runs; a summary table at the end (`--json` for one JSON line). Ctrl-C
 * stops it with "interrupted after round N; rerun the same command to resume" (exit 130); the
 * rerun continues from the last checkpoint. A rerun whose options (schedule, seed, params) differ
 * from the checkpoint's is refused with the differences (exit 2); `--force-resume` continues
 * anyway, `--no-resume` starts over.
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
import { intArray, runDetection } from "./detection.ts";
import { type EvalSet, evaluateModel, readEvalSet, roundFigures } from "./evaluate.ts";
import { optionDifferences, ResumeMismatchError, runOptions } from "./checkpoint_options.ts";
import { DEFAULT_RETRY, postWithRetry, RequestFailedError, type RetryOptions } from "./http.ts";
import { onInterrupt, whileCheckpointing } from "./interrupt.ts";
import { imageBatchFromNpy, imageDataUri } from "./image_png.ts";
import {
  type DetectionSection,
  flagScore,
  type ReportData,
  type RoundPoint,
  type SamplesSection,
} from "./report_data.ts";
import { reportHtml, type ReportImages } from "./report_html.ts";
import { runSamples } from "./samples.ts";
import { Progress } from "./progress.ts";
import { summaryTable } from "./summary_table.ts";

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
  /** Resume even when the checkpoint was made with other options (schedule, seed, params). */
  forceResume?: boolean;
  quiet?: boolean;
  /**
   * Called with the last checkpointed round: once the run has started (0, or the round a resume
   * starts after) and after each round's checkpoint is written. What a Ctrl-C handler reports.
   */
  onCheckpoint?: (round: number, progress: number) => void;
  retry?: Partial<RetryOptions>;
  /**
   * Detect poisoned images in the extra set with the infected model before purifying
   * (`POST /v1/detect` params, e.g. `{ "method": "pud" }`); absent: no detection step.
   */
  detect?: Record<string, unknown>;
  /** Ground truth of the extra set (1 = poisoned; `.npy` or JSON): scores detection and flags. */
  isPoison?: string;
  /** Sample images in the report's grid (needs `evalDir`; default 8, 0 for none). */
  samples?: number;
  /** Attack params of the sample grid's adversarial images (default PGD L-inf 8/255, 10 steps). */
  sampleAttack?: Record<string, unknown>;
  /** The report's title. */
  title?: string;
  /** More inputs for the report (e.g. how the model and data were made). */
  inputs?: Record<string, unknown>;
  /** Class names by index (default: `classNames` of lab.json in `evalDir` or `modelDir`). */
  classNames?: string[];
}

export interface PurifyOutcome {
  rounds: number;
  done: boolean;
  points: RoundPoint[];
  finalReport: Record<string, unknown>;
  outDir: string;
  /** Everything report.json holds. */
  report?: ReportData;
  /** Path of the HTML report. */
  reportPath?: string;
}

/**
 * A round's `report` part as the client reads it (`POST /v1/purify/rounds`). Only the fields the
 * client acts on are named; the rest is kept as sent (rounds.jsonl, the report's `last`).
 */
export interface RoundReply {
  round?: number;
  stage?: string;
  phase?: string;
  /** Share of the purification done, in [0, 1]. */
  progress?: number;
  done?: boolean;
  /** Every image flagged as poisoned so far. */
  flagged_indices?: number[];
  backend?: string;
  [field: string]: unknown;
}

/** The service's `GET /readyz` answer, the part the report shows. */
interface ReadinessReply {
  backend?: { name?: string };
  version?: string;
}

interface Checkpoint {
  round: number;
  done: boolean;
  points: RoundPoint[];
  lastReport: RoundReply;
  detection?: DetectionSection;
  backend?: string;
  /** Wall seconds per phase so far. */
  timings?: Record<string, number>;
  /** The run-defining params it was made with ({@link runOptions}); absent in older checkpoints. */
  options?: Record<string, unknown>;
}

/** What every step of a run shares: the job, its retry policy, its log and its clock. */
interface RunContext {
  job: PurifyJob;
  retry: RetryOptions;
  /** A line on stderr unless quiet. */
  say: (line: string) => void;
  /** Wall seconds per phase, this process's added to a resumed checkpoint's. */
  timings: Record<string, number>;
  addTime: (phase: string, seconds: number) => void;
  ckDir: string;
}

/** The run's input files, read once. */
interface RunInputs {
  images: Uint8Array;
  labels: Uint8Array;
  evalSet?: EvalSet;
  isPoison?: Uint8Array;
  infected: BundleOnDisk;
}

/** Where a run starts: a fresh checkpoint, or the one on disk. */
interface RunStart {
  ck: Checkpoint;
  resumed: boolean;
  model: BundleOnDisk;
  state?: Uint8Array;
  /** The params rounds are sent with (a forced resume takes the checkpoint's). */
  params: Record<string, unknown>;
}

/** One round's answer: its report, the model to send next and the state to send with it. */
interface RoundAnswer {
  report: RoundReply;
  model: BundleOnDisk;
  state: Uint8Array;
}

/** The server's readiness answer, for the report's backend and version; never fails a run. */
async function readiness(server: string): Promise<{ backend?: string; version?: string }> {
  try {
    const r = await fetch(`${server}/readyz`, { signal: AbortSignal.timeout(5000) });
    if (!r.ok) {
      await r.body?.cancel();
      return {};
    }
    const j: ReadinessReply | null = await r.json();
    return { backend: j?.backend?.name, version: j?.version };
  } catch {
    return {};
  }
}

async function classNamesOf(job: PurifyJob): Promise<string[] | undefined> {
  if (job.classNames) return job.classNames;
  for (const dir of [job.evalDir, job.modelDir]) {
    if (!dir) continue;
    try {
      const lab = JSON.parse(await Deno.readTextFile(join(dir, "lab.json")));
      if (Array.isArray(lab.classNames)) return lab.classNames.map(String);
    } catch {
      // no lab.json there: classes are shown by number
    }
  }
  return undefined;
}

/** `model`'s figures on the evaluation set, with the seconds they took (added to `evaluate`). */
async function evaluateRound(
  ctx: RunContext,
  model: BundleOnDisk,
  set: EvalSet,
): Promise<Omit<RoundPoint, "round"> & { eval_seconds: number }> {
  const t = performance.now();
  const figs = roundFigures(await evaluateModel(ctx.job.server, model, set, ctx.job, ctx.retry));
  const s = (performance.now() - t) / 1000;
  ctx.addTime("evaluate", s);
  return { ...figs, eval_seconds: round1(s) };
}

/** Runs (or resumes) a whole purification; returns when the schedule is done or rounds run out. */
export async function runPurification(job: PurifyJob): Promise<PurifyOutcome> {
  const tStart = performance.now();
  const ctx = runContext(job);
  const inputs = await readInputs(job);
  const start = await openCheckpoint(ctx, inputs.infected);
  const ready = await readiness(job.server);
  const { ck } = start;
  const progress = new Progress();
  progress.resumeAt(Number(ck.lastReport.progress ?? 0));
  job.onCheckpoint?.(ck.round, progress.shown);
  ck.backend ??= ready.backend;
  if (job.detect && !ck.detection) await detectStep(ctx, inputs, ck);
  if (!start.resumed && job.evalDir) await evaluateInfected(ctx, start.model, inputs.evalSet!, ck);
  if (start.resumed && ck.done) {
    ctx.say(`the checkpoint in ${ctx.ckDir} is already done; writing the report`);
  }
  const model = await runRounds(ctx, inputs, start, progress);
  await writeBundleDir(join(job.out, "purified"), model);
  const flagged = ck.lastReport.flagged_indices ?? [];
  await writeAtomic(join(job.out, "flagged.json"), JSON.stringify(flagged));
  const extras = await reportExtras(ctx, inputs, ck, model);
  const data = await reportData(ctx, inputs, ck, extras, ready.version, tStart);
  await writeAtomic(join(job.out, "report.json"), JSON.stringify(data, null, 2));
  const reportPath = join(job.out, "report.html");
  await writeAtomic(reportPath, reportHtml(data, extras.images));
  return {
    rounds: ck.round,
    done: ck.done,
    points: ck.points,
    finalReport: ck.lastReport,
    outDir: job.out,
    report: data,
    reportPath,
  };
}

/** The job's retry policy, log and clock. */
function runContext(job: PurifyJob): RunContext {
  const retry: RetryOptions = {
    ...DEFAULT_RETRY,
    token: job.token,
    onRetry: (a, why, ms) => {
      if (!job.quiet) console.error(`\nretry ${a} in ${ms} ms: ${why}`);
    },
    ...job.retry,
  };
  const timings: Record<string, number> = {};
  return {
    job,
    retry,
    say: (line) => {
      if (!job.quiet) console.error(line);
    },
    timings,
    addTime: (k, seconds) => {
      timings[k] = Math.round(((timings[k] ?? 0) + seconds) * 10) / 10;
    },
    ckDir: join(job.out, "checkpoint"),
  };
}

async function readInputs(job: PurifyJob): Promise<RunInputs> {
  const images = await Deno.readFile(job.images);
  const labels = await Deno.readFile(job.labels);
  const evalSet = job.evalDir ? await readEvalSet(job.evalDir) : undefined;
  const isPoison = job.isPoison ? await Deno.readFile(job.isPoison) : undefined;
  const infected = await readBundleDir(job.modelDir);
  return { images, labels, evalSet, isPoison, infected };
}

/**
 * The checkpoint to continue from (when resuming and one is there) or a fresh one. A checkpoint
 * made with other options is refused unless forced; then its options win.
 *
 * @throws {ResumeMismatchError} the options differ and `forceResume` is off.
 */
async function openCheckpoint(ctx: RunContext, infected: BundleOnDisk): Promise<RunStart> {
  const { job, ckDir } = ctx;
  const resumed = job.resume && await Deno.stat(join(ckDir, "checkpoint.json")).then(
    () => true,
    () => false,
  );
  if (!resumed) {
    const ck: Checkpoint = { round: 0, done: false, points: [], lastReport: {} };
    ck.options = runOptions(job.params);
    return { ck, resumed, model: infected, params: job.params };
  }
  const ck: Checkpoint = JSON.parse(await Deno.readTextFile(join(ckDir, "checkpoint.json")));
  let params = job.params;
  const differences = ck.options ? optionDifferences(ck.options, runOptions(job.params)) : [];
  if (differences.length && !job.forceResume) {
    throw new ResumeMismatchError(job.out, ck.round, differences);
  }
  if (differences.length) {
    // The state carries the run's schedule and seed, and the service refuses others: forcing
    // continues the checkpoint's run with this command's per-round budgets.
    ctx.say(`--force-resume: continuing the checkpoint's run; ignoring ${differences.join("; ")}`);
    params = { ...params, ...ck.options };
  }
  const model = await readBundleDir(join(ckDir, "model"));
  const state = await Deno.readFile(join(ckDir, "state.json"));
  ctx.say(`resuming after round ${ck.round} from ${ckDir}`);
  // Time spent before the resume is in the checkpoint's phases.
  Object.assign(ctx.timings, ck.timings ?? {});
  return { ck, resumed, model, state, params };
}

/** Detection on the extra set with the infected model, before purifying (`--detect`). */
async function detectStep(ctx: RunContext, inputs: RunInputs, ck: Checkpoint): Promise<void> {
  const { job, say } = ctx;
  say(`detect: ${JSON.stringify(job.detect)} on the extra set with the infected model`);
  const d = await runDetection({
    server: job.server,
    model: inputs.infected,
    images: inputs.images,
    labels: inputs.labels,
    isPoison: inputs.isPoison,
    params: job.detect!,
    retry: ctx.retry,
  });
  ck.detection = d.section;
  ck.backend ??= d.backend;
  ctx.addTime("detect", d.section.seconds);
  const m = d.section.metrics;
  say(
    `detect: flagged ${d.section.flagged} of ${d.section.n}` +
      (m
        ? `; precision ${fmtPct(m.precision)} recall ${fmtPct(m.recall)} AUROC ${
          m.auroc?.toFixed(3) ?? "—"
        }`
        : "") +
      ` (${d.section.seconds.toFixed(1)} s)`,
  );
}

/** Round 0 of the figures: the infected model on the evaluation set (`--eval`). */
async function evaluateInfected(
  ctx: RunContext,
  model: BundleOnDisk,
  set: EvalSet,
  ck: Checkpoint,
): Promise<void> {
  const figs = await evaluateRound(ctx, model, set);
  ck.points.push({ round: 0, stage: "infected", ...figs });
  ctx.say(
    `infected model: acc ${fmtPct(figs.clean_accuracy)} asr ${
      fmtPct(figs.attack_success_rate)
    } rob ${fmtPct(figs.robust_accuracy)} (${figs.eval_seconds.toFixed(1)} s)`,
  );
}

/** Rounds until the schedule is done or `maxRounds` is reached; returns the last model. */
async function runRounds(
  ctx: RunContext,
  inputs: RunInputs,
  start: RunStart,
  progress: Progress,
): Promise<BundleOnDisk> {
  const { job } = ctx;
  const { ck } = start;
  let model = start.model;
  let state = start.state;
  try {
    while (!ck.done && ck.round < job.maxRounds) {
      const t0 = performance.now();
      if (!job.quiet) progress.roundStarted(ck.round + 1);
      const answer = await postRound(ctx, inputs, model, state, start.params);
      ({ model, state } = answer);
      const report = answer.report;
      const roundSeconds = (performance.now() - t0) / 1000;
      ctx.addTime("rounds", roundSeconds);
      ck.round++;
      ck.done = Boolean(report.done);
      ck.lastReport = report;
      if (typeof report.backend === "string") ck.backend ??= report.backend;
      const point: RoundPoint = {
        round: ck.round,
        stage: report.stage,
        seconds: round1(roundSeconds),
      };
      if (job.evalDir) Object.assign(point, await evaluateRound(ctx, model, inputs.evalSet!));
      ck.points.push(point);
      ck.timings = ctx.timings;
      await checkpointRound(ctx, ck, answer, progress);
      if (!job.quiet) {
        const figs = job.evalDir
          ? ` acc ${fmtPct(point.clean_accuracy)} asr ${fmtPct(point.attack_success_rate)} rob ${
            fmtPct(point.robust_accuracy)
          }`
          : "";
        progress.roundDone(
          ck.round,
          Number(report.progress ?? 0),
          `stage ${report.stage ?? "?"}${figs} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
        );
      }
    }
  } finally {
    // A round that failed must not leave the ticker keeping the process alive.
    if (!job.quiet) progress.stop();
  }
  return model;
}

/** One `POST /v1/purify/rounds` (retried on transient failures) and its multipart answer. */
async function postRound(
  ctx: RunContext,
  inputs: RunInputs,
  model: BundleOnDisk,
  state: Uint8Array | undefined,
  params: Record<string, unknown>,
): Promise<RoundAnswer> {
  const res = await postWithRetry(`${ctx.job.server}/v1/purify/rounds`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", new Blob([inputs.images as Uint8Array<ArrayBuffer>]), "images.npy");
    f.append("labels", new Blob([inputs.labels as Uint8Array<ArrayBuffer>]), "labels.npy");
    f.append("params", JSON.stringify(params));
    if (state) f.append("state", new Blob([state as Uint8Array<ArrayBuffer>]), "state.json");
    return f;
  }, ctx.retry);
  const form = await res.formData();
  const report: RoundReply = JSON.parse(new TextDecoder().decode(await partBytes(form, "report")));
  return {
    report,
    model: { modelJson: await partBytes(form, "model"), weights: await partFiles(form, "weights") },
    state: await partBytes(form, "state"),
  };
}

/**
 * Model and state first, checkpoint.json last, with Ctrl-C held off until all are written (a
 * crash in between still resumes from the old round's checkpoint.json).
 */
async function checkpointRound(
  ctx: RunContext,
  ck: Checkpoint,
  answer: RoundAnswer,
  progress: Progress,
): Promise<void> {
  const { job, ckDir } = ctx;
  await whileCheckpointing(async () => {
    await writeBundleDir(join(ckDir, "model"), answer.model);
    await writeAtomic(join(ckDir, "state.json"), answer.state);
    await writeAtomic(join(ckDir, "checkpoint.json"), JSON.stringify(ck));
    await Deno.writeTextFile(join(job.out, "rounds.jsonl"), JSON.stringify(answer.report) + "\n", {
      append: true,
    });
    // What "interrupted after round N" names: this checkpoint, now whole.
    job.onCheckpoint?.(ck.round, progress.update(Number(answer.report.progress ?? 0)));
  });
}

/** The report's optional sections: sample images and flagged images, with why any is missing. */
interface ReportExtras {
  images: ReportImages;
  samples?: SamplesSection;
  sampleCount: number;
  notes: string[];
}

/**
 * Sample images before and after, and the detector's flagged images. The purified model is
 * saved by now: an extra that fails costs its section (and a note), not the run.
 */
async function reportExtras(
  ctx: RunContext,
  inputs: RunInputs,
  ck: Checkpoint,
  model: BundleOnDisk,
): Promise<ReportExtras> {
  const { job, say } = ctx;
  const images: ReportImages = {};
  let samples: SamplesSection | undefined;
  const sampleCount = job.samples ?? 8;
  const notes: string[] = [];
  if (job.evalDir && sampleCount > 0) {
    say(`samples: ${sampleCount} test images, clean, triggered and adversarial, before and after`);
    try {
      const s = await runSamples({
        server: job.server,
        infected: inputs.infected,
        purified: model,
        set: inputs.evalSet!,
        target: job.target,
        count: sampleCount,
        attack: job.sampleAttack,
        retry: ctx.retry,
      });
      samples = s.section;
      images.samples = s.images;
      ctx.addTime("samples", s.section.seconds);
    } catch (e) {
      notes.push(`sample images left out: ${(e as Error).message}`);
    }
  }
  if (ck.detection?.flagged_images.length) {
    try {
      const extra = imageBatchFromNpy(inputs.images);
      images.flagged = new Map(
        ck.detection.flagged_images.map((f) => [f.index, imageDataUri(extra, f.index)]),
      );
    } catch (e) {
      notes.push(
        `flagged images not shown (the extra set is not an NHWC .npy): ${(e as Error).message}`,
      );
    }
  }
  for (const n of notes) say(`warning: ${n}`);
  return { images, samples, sampleCount, notes };
}

/** Everything report.json holds. */
async function reportData(
  ctx: RunContext,
  inputs: RunInputs,
  ck: Checkpoint,
  extras: ReportExtras,
  version: string | undefined,
  tStart: number,
): Promise<ReportData> {
  const { job, timings } = ctx;
  const { samples, sampleCount, notes } = extras;
  timings.total = round1(
    Object.entries(timings).filter(([k]) => k !== "total").reduce((a, [, v]) => a + v, 0),
  );
  timings.this_process = round1((performance.now() - tStart) / 1000);
  const truth = inputs.isPoison ? intArray(inputs.isPoison) : undefined;
  const flagged = ck.lastReport.flagged_indices ?? [];
  return {
    title: job.title ?? "purifier: purification report",
    created: new Date().toISOString(),
    server: job.server,
    backend: ck.backend,
    version,
    inputs: {
      model: job.modelDir,
      images: job.images,
      labels: job.labels,
      ...(job.isPoison ? { is_poison: job.isPoison } : {}),
      ...(job.evalDir ? { eval: job.evalDir } : {}),
      ...(job.target !== undefined ? { target: job.target } : {}),
      ...job.inputs,
    },
    settings: {
      purify: job.params,
      ...(job.detect ? { detect: job.detect } : {}),
      ...(job.robust ? { robust: job.robust } : {}),
      ...(samples ? { samples: { count: sampleCount, attack: samples.attack } } : {}),
      max_rounds: job.maxRounds,
    },
    summary: {
      rounds: ck.round,
      done: ck.done,
      before: ck.points[0],
      after: ck.points.at(-1),
      purification_flags: Array.isArray(flagged) ? flagScore(flagged, truth) : { flagged: 0 },
    },
    points: ck.points,
    detection: ck.detection,
    samples,
    class_names: await classNamesOf(job),
    timings,
    ...(notes.length ? { notes } : {}),
    last: ck.lastReport,
  };
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
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
      detect: { type: "string" },
      "is-poison": { type: "string" },
      samples: { type: "string" },
      title: { type: "string" },
      token: { type: "string", default: Deno.env.get("API_TOKEN") },
      "max-rounds": { type: "string", default: "1000" },
      "no-resume": { type: "boolean", default: false },
      "force-resume": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  if (!a.model || !a.images || !a.labels || !a.out) {
    console.error(
      "usage: deno task purify --server URL --model DIR --images x.npy --labels y.npy --out DIR " +
        "[--schedule default|published|FILE.json] [--params JSON] [--eval DIR [--target N] " +
        "[--robust JSON]] [--detect JSON [--is-poison FILE]] [--samples N] [--title TEXT] " +
        "[--no-resume | --force-resume] [--json]",
    );
    Deno.exit(2);
  }
  const params: Record<string, unknown> = a.params ? JSON.parse(a.params) : {};
  if (a.schedule) {
    params.schedule = a.schedule.endsWith(".json")
      ? JSON.parse(await Deno.readTextFile(a.schedule))
      : a.schedule;
  }
  // Ctrl-C: the last checkpoint is whole (checkpoint.json is written last), so say where it is.
  let checkpointed = 0;
  onInterrupt(() => {
    console.error(`\ninterrupted after round ${checkpointed}; rerun the same command to resume`);
    Deno.exit(130);
  });
  const t0 = performance.now();
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
    detect: a.detect ? JSON.parse(a.detect) : undefined,
    isPoison: a["is-poison"],
    samples: a.samples === undefined ? undefined : Number(a.samples),
    title: a.title,
    token: a.token,
    maxRounds: Number(a["max-rounds"]),
    resume: !a["no-resume"],
    forceResume: a["force-resume"],
    onCheckpoint: (round) => checkpointed = round,
  }).catch((e) => {
    if (e instanceof ResumeMismatchError) {
      console.error(e.message);
      Deno.exit(2);
    }
    if (e instanceof RequestFailedError) {
      console.error(`\nstopped after round ${checkpointed}: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  });
  if (a.json) {
    console.log(JSON.stringify({
      rounds: out.rounds,
      done: out.done,
      last: out.points.at(-1),
      out: out.outDir,
      report: out.reportPath,
    }));
  } else {
    const first = out.points[0];
    const last = out.points.at(-1);
    const before = first?.stage === "infected" ? first : undefined;
    for (
      const line of summaryTable([{
        rounds: out.rounds,
        done: out.done,
        acc: [before?.clean_accuracy, last?.clean_accuracy],
        asr: [before?.attack_success_rate, last?.attack_success_rate],
        rob: [before?.robust_accuracy, last?.robust_accuracy],
        worst: [before?.worst_case_robust_accuracy, last?.worst_case_robust_accuracy],
        seconds: (performance.now() - t0) / 1000,
        where: out.reportPath ?? out.outDir,
      }])
    ) console.log(line);
  }
  Deno.exit(0);
}

/**
 * The client's parallel mode: purify (or evaluate) many models at once against one server or a
 * gateway in front of several replicas, at most `concurrency` jobs in flight. Each purification
 * is `runPurification` (one bounded round per request, a checkpoint after each, retries with
 * backoff), so a round that fails on a replica that died is retried and lands on another: rounds
 * are stateless on the server.
 *
 *   deno task purify:parallel --server http://gateway --jobs jobs.json [--concurrency 4]
 *     [--mode purify|evaluate] [--token T]
 *
 * `jobs.json` is an array of `{ "name", "model": DIR, "images": x.npy, "labels": y.npy,
 * "out": DIR, "params": {...} }` (`out` is needed for purify only; give each job its own). Each
 * round prints a line to stderr (job, round, monotonic progress, elapsed and estimated time
 * left); the end is a table, one row per job (`--json`: one JSON line per job, then totals).
 * Ctrl-C prints how many jobs finished and exits 130; rerunning the same command resumes every
 * job from its checkpoint. A job whose checkpoint was made with other options fails with the
 * differences unless `--force-resume`.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { appendBundle, readBundleDir } from "./bundle_files.ts";
import { DEFAULT_RETRY, postWithRetry, type RetryOptions } from "./http.ts";
import { onInterrupt } from "./interrupt.ts";
import { formatDuration } from "./progress.ts";
import { type PurifyOutcome, runPurification } from "./purify.ts";
import { summaryTable } from "./summary_table.ts";

export interface ParallelJob {
  name: string;
  model: string;
  images: string;
  labels: string;
  /** Output folder (purify mode). */
  out?: string;
  /** Round params (purify) or evaluate params (evaluate). */
  params?: Record<string, unknown>;
}

export interface ParallelOptions {
  server: string;
  mode: "purify" | "evaluate";
  concurrency: number;
  token?: string;
  maxRounds?: number;
  retry?: Partial<RetryOptions>;
  /** Resume checkpoints made with other options (see `PurifyJob.forceResume`). */
  forceResume?: boolean;
  /** Called as each job ends. */
  onDone?: (r: JobResult) => void;
  /** Called after each checkpointed round of a purify job (progress never goes backwards). */
  onRound?: (name: string, round: number, progress: number) => void;
}

export interface JobResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
  /** purify: rounds run and whether the schedule finished. */
  rounds?: number;
  done?: boolean;
  /** purify: the report's path. */
  report?: string;
  /** evaluate: the server's JSON answer. */
  evaluation?: Record<string, unknown>;
}

/** Runs `jobs`, at most `opts.concurrency` at a time; resolves when every job has ended. */
export async function runParallel(
  jobs: ParallelJob[],
  opts: ParallelOptions,
): Promise<JobResult[]> {
  const results: JobResult[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await runOne(jobs[i], opts);
      opts.onDone?.(results[i]);
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(opts.concurrency, jobs.length)) }, worker),
  );
  return results;
}

async function runOne(job: ParallelJob, opts: ParallelOptions): Promise<JobResult> {
  const t0 = performance.now();
  try {
    if (opts.mode === "evaluate") {
      const evaluation = await evaluateOnce(job, opts);
      return { name: job.name, ok: true, ms: performance.now() - t0, evaluation };
    }
    if (!job.out) throw new Error(`job '${job.name}' needs 'out' in purify mode`);
    const o: PurifyOutcome = await runPurification({
      server: opts.server,
      modelDir: job.model,
      images: job.images,
      labels: job.labels,
      out: job.out,
      params: job.params ?? {},
      token: opts.token,
      maxRounds: opts.maxRounds ?? 1000,
      resume: true,
      forceResume: opts.forceResume,
      quiet: true,
      retry: opts.retry,
      onCheckpoint: (round, progress) => opts.onRound?.(job.name, round, progress),
    });
    return {
      name: job.name,
      ok: o.done,
      ms: performance.now() - t0,
      rounds: o.rounds,
      done: o.done,
      report: o.reportPath,
    };
  } catch (e) {
    return { name: job.name, ok: false, ms: performance.now() - t0, error: (e as Error).message };
  }
}

async function evaluateOnce(job: ParallelJob, opts: ParallelOptions) {
  const model = await readBundleDir(job.model);
  const images = await Deno.readFile(job.images);
  const labels = await Deno.readFile(job.labels);
  const retry: RetryOptions = { ...DEFAULT_RETRY, token: opts.token, ...opts.retry };
  const res = await postWithRetry(`${opts.server}/v1/evaluate`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", new Blob([images as Uint8Array<ArrayBuffer>]), "images.npy");
    f.append("labels", new Blob([labels as Uint8Array<ArrayBuffer>]), "labels.npy");
    f.append("params", JSON.stringify(job.params ?? {}));
    return f;
  }, retry);
  return await res.json() as Record<string, unknown>;
}

/** An evaluation's figures as the summary table's "after" column. */
function evaluationFigures(e: Record<string, unknown>) {
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  return {
    acc: [undefined, num(e.clean_accuracy)] as [undefined, number | undefined],
    asr: [undefined, num(e.attack_success_rate)] as [undefined, number | undefined],
    rob: [undefined, num(e.robust_accuracy)] as [undefined, number | undefined],
  };
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    options: {
      server: { type: "string", default: "http://127.0.0.1:8000" },
      jobs: { type: "string" },
      mode: { type: "string", default: "purify" },
      concurrency: { type: "string", default: "4" },
      token: { type: "string", default: Deno.env.get("API_TOKEN") },
      "max-rounds": { type: "string", default: "1000" },
      "force-resume": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  if (!a.jobs || (a.mode !== "purify" && a.mode !== "evaluate")) {
    console.error(
      "usage: deno task purify:parallel --server URL --jobs jobs.json [--concurrency 4] " +
        "[--mode purify|evaluate] [--token T] [--force-resume] [--json]",
    );
    Deno.exit(2);
  }
  const base = join(a.jobs, "..");
  const resolve = (p: string) => (p.startsWith("/") ? p : join(base, p));
  const jobs = (JSON.parse(await Deno.readTextFile(a.jobs)) as ParallelJob[]).map((j, i) => ({
    ...j,
    name: j.name ?? `job${i}`,
    model: resolve(j.model),
    images: resolve(j.images),
    labels: resolve(j.labels),
    out: j.out === undefined ? undefined : resolve(j.out),
  }));
  const t0 = performance.now();
  let finished = 0;
  onInterrupt(() => {
    console.error(
      `\ninterrupted after ${finished} of ${jobs.length} jobs; rerun the same command to resume`,
    );
    Deno.exit(130);
  });
  const elapsed = () => formatDuration((performance.now() - t0) / 1000);
  const results = await runParallel(jobs, {
    server: a.server!.replace(/\/$/, ""),
    mode: a.mode,
    concurrency: Number(a.concurrency),
    token: a.token,
    maxRounds: Number(a["max-rounds"]),
    forceResume: a["force-resume"],
    onRound: (name, round, progress) =>
      console.error(
        `${name}: round ${round}, ${(progress * 100).toFixed(0)}% | elapsed ${elapsed()}`,
      ),
    onDone: (r) => {
      finished++;
      if (a.json) console.log(JSON.stringify(r));
      else {
        console.error(
          `[${finished}/${jobs.length}] ${r.name} ${r.ok ? "done" : "failed"} after ${
            formatDuration(r.ms / 1000)
          }`,
        );
      }
    },
  });
  const failed = results.filter((r) => !r.ok).length;
  const wall = +((performance.now() - t0) / 1000).toFixed(1);
  if (a.json) console.log(JSON.stringify({ jobs: results.length, failed, wall_s: wall }));
  else {
    const rows = results.map((r) => ({
      name: r.name,
      rounds: r.rounds ?? 0,
      done: r.ok,
      ...(r.evaluation ? evaluationFigures(r.evaluation) : {}),
      seconds: r.ms / 1000,
      where: r.error?.split("\n")[0] ?? r.report ?? "",
    }));
    for (const line of summaryTable(rows)) console.log(line);
    console.log(`${results.length} jobs, ${failed} failed, ${formatDuration(wall)}`);
  }
  Deno.exit(failed ? 1 : 0);
}

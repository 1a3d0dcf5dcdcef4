/**
 * What a checkpoint was made with, so that a rerun with other options does not silently continue
 * (or, for a finished run, silently report) a different purification. The run is defined by the
 * params the first round reads (`schedule`, `seed`) and the model's `preprocess`; the per-round
 * budgets (`max_steps`, `max_ms`) may change between invocations.
 */

/** Params that may differ on resume: they size each round, not the run. */
const PER_ROUND = new Set(["max_steps", "max_ms"]);
/** What an absent param means, so `{}` and `{"schedule":"default","seed":0}` agree. */
const DEFAULTS: Record<string, unknown> = { schedule: "default", seed: 0 };

/** The run-defining part of round params, with defaults filled in. */
export function runOptions(params: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...DEFAULTS };
  for (const [k, v] of Object.entries(params)) {
    if (!PER_ROUND.has(k) && v !== undefined) out[k] = v;
  }
  return out;
}

function show(v: unknown): string {
  if (v === undefined) return "(unset)";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** One line per option that differs: `seed: 1 in the checkpoint, 2 now`. */
export function optionDifferences(
  checkpoint: Record<string, unknown>,
  now: Record<string, unknown>,
): string[] {
  const keys = [...new Set([...Object.keys(checkpoint), ...Object.keys(now)])].sort();
  return keys
    .filter((k) => JSON.stringify(checkpoint[k]) !== JSON.stringify(now[k]))
    .map((k) => `${k}: ${show(checkpoint[k])} in the checkpoint, ${show(now[k])} now`);
}

/** A resume whose options differ from the checkpoint's; the CLI prints it and exits with 2. */
export class ResumeMismatchError extends Error {
  constructor(readonly dir: string, readonly round: number, readonly differences: string[]) {
    super(
      `${dir} holds a checkpoint (after round ${round}) made with other options:\n` +
        differences.map((d) => `  ${d}\n`).join("") +
        "use another --out, --no-resume to start over, or --force-resume to continue it anyway",
    );
    this.name = "ResumeMismatchError";
  }
}

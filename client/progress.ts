/**
 * The client's progress line: a bar that never goes backwards, the run's elapsed time and an
 * estimate of the time left, while a round is in flight as well as between rounds. On a terminal
 * the line is redrawn in place every second; piped into a log or CI, a full line is written every
 * `everyMs` (default 10 s) while a round runs and one when it ends, so a long round is not a long
 * silence and the log stays readable.
 *
 * The estimate is the time this process has spent in rounds per unit of progress, times what is
 * left. It counts only this process's rounds, so a resumed run is not credited with time it did
 * not spend, and set-up (detection, the first evaluation) does not inflate it. While a round is in
 * flight, the estimate made when it was sent counts down (the service reports progress only when
 * a round ends).
 */

/** Lines written per round in flight when the output is not a terminal: one every 10 s. */
export const PIPE_EVERY_MS = 10_000;

/** `1h02m`, `3m05s`, `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** `[#####.....]  42%`. */
export function bar(progress: number, width = 30): string {
  const n = Math.max(0, Math.min(width, Math.round(progress * width)));
  return `[${"#".repeat(n)}${".".repeat(width - n)}] ${(progress * 100).toFixed(0).padStart(3)}%`;
}

export interface ProgressOptions {
  /** Where lines go (default: stderr). */
  write?: (text: string) => void;
  /** Rewrite one line in place and tick while waiting (default: stderr is a terminal). */
  tty?: boolean;
  /** Clock in ms (tests). */
  now?: () => number;
  /** Not on a terminal: write a line this often while a round runs (default 10 s). */
  everyMs?: number;
}

/** The progress of one purification run. */
export class Progress {
  #shown = 0;
  #startProgress: number | undefined;
  readonly #t0: number;
  /** When this process sent its first round: the estimate's clock. */
  #tRounds: number | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #roundStart = 0;
  /** The estimate when the running round was sent, which counts down while it runs. */
  #leftAtStart: number | undefined;
  #label = "";
  readonly #write: (text: string) => void;
  readonly #tty: boolean;
  readonly #now: () => number;
  readonly #everyMs: number;

  constructor(opts: ProgressOptions = {}) {
    const enc = new TextEncoder();
    this.#write = opts.write ?? ((t) => Deno.stderr.writeSync(enc.encode(t)));
    this.#tty = opts.tty ?? Deno.stderr.isTerminal();
    this.#now = opts.now ?? (() => performance.now());
    this.#everyMs = opts.everyMs ?? PIPE_EVERY_MS;
    this.#t0 = this.#now();
  }

  /** The progress shown: the highest reported so far, so the bar never moves back. */
  get shown(): number {
    return this.#shown;
  }

  /** Takes a round's reported progress (0..1); returns the monotonic value shown. */
  update(progress: number): number {
    const p = Number.isFinite(progress) ? Math.max(0, Math.min(1, progress)) : 0;
    this.#startProgress ??= this.#shown;
    this.#shown = Math.max(this.#shown, p);
    return this.#shown;
  }

  /** Seeds the bar with a resumed run's last progress (not counted in the estimate). */
  resumeAt(progress: number): void {
    this.#shown = Math.max(this.#shown, progress);
  }

  /** Seconds since this run (process) started. */
  elapsedS(): number {
    return (this.#now() - this.#t0) / 1000;
  }

  /** Estimated seconds left, or `undefined` before this process has made progress. */
  remainingS(): number | undefined {
    const done = this.#shown - (this.#startProgress ?? this.#shown);
    if (done <= 0 || this.#tRounds === undefined) return undefined;
    return (this.#now() - this.#tRounds) / 1000 * (1 - this.#shown) / done;
  }

  /** Whether a round is in flight. */
  get running(): boolean {
    return this.#label.endsWith("running");
  }

  /** `elapsed 3m05s, ~7m10s left`. */
  times(): string {
    const left = this.running && this.#leftAtStart !== undefined
      ? Math.max(0, this.#leftAtStart - (this.#now() - this.#roundStart) / 1000)
      : this.remainingS();
    return `elapsed ${formatDuration(this.elapsedS())}` +
      (left === undefined ? "" : `, ~${formatDuration(left)} left`);
  }

  /**
   * Round `round` has been sent: on a terminal, redraws its waiting time every second; elsewhere
   * writes a line every `everyMs` until it is done.
   */
  roundStarted(round: number): void {
    this.#leftAtStart = this.remainingS();
    this.#roundStart = this.#now();
    this.#tRounds ??= this.#roundStart;
    this.#label = `round ${round} running`;
    if (this.#tty) {
      this.#draw();
      this.#ticker ??= setInterval(() => this.#draw(), 1000);
    } else {
      this.#ticker ??= setInterval(() => {
        if (this.running) this.#write(`${this.#line()}\n`);
      }, this.#everyMs);
    }
  }

  /** Round done: one line with its figures (`detail`). */
  roundDone(round: number, progress: number, detail: string): void {
    this.update(progress);
    this.#label = `round ${round} ${detail}`;
    if (this.#tty) this.#draw();
    else this.#write(`${this.#line()}\n`);
  }

  /** Stops the ticker and ends the line. */
  stop(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
    if (this.#tty) this.#write("\n");
  }

  #line(): string {
    const waiting = this.running
      ? ` ${formatDuration((this.#now() - this.#roundStart) / 1000)}`
      : "";
    return `${bar(this.#shown)} ${this.#label}${waiting} | ${this.times()}`;
  }

  #draw(): void {
    this.#write(`\r${this.#line()}\x1b[K`);
  }
}

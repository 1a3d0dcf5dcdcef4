/**
 * The client's last words: a header and one row (or one row per job) of fixed-width columns,
 * instead of a JSON dump. Figures are before → after where the run evaluated its rounds.
 */
import { formatDuration } from "./progress.ts";

export interface SummaryRow {
  name?: string;
  rounds: number;
  done: boolean;
  /** Clean accuracy, attack success rate and robust accuracy before and after (0..1). */
  acc?: [number | undefined, number | undefined];
  asr?: [number | undefined, number | undefined];
  rob?: [number | undefined, number | undefined];
  /** Worst-case robust accuracy (the ensemble's, or PGD's after its Square check). */
  worst?: [number | undefined, number | undefined];
  seconds: number;
  /** The report's path, or the error of a failed job. */
  where: string;
}

function pct(v: number | undefined): string {
  return typeof v === "number" ? `${(v * 100).toFixed(1)}%` : "—";
}

function pair(p: SummaryRow["acc"]): string {
  return p && (p[0] !== undefined || p[1] !== undefined) ? `${pct(p[0])} → ${pct(p[1])}` : "—";
}

/** The table's lines (header first), columns padded to their widest cell. */
export function summaryTable(rows: SummaryRow[]): string[] {
  const named = rows.some((r) => r.name !== undefined);
  const worst = rows.some((r) => r.worst?.some((v) => v !== undefined));
  const head = [
    ...(named ? ["job"] : []),
    "rounds",
    "done",
    "clean acc",
    "attack success",
    "robust acc",
    ...(worst ? ["worst-case robust"] : []),
    "time",
    "report",
  ];
  const cells = rows.map((r) => [
    ...(named ? [r.name ?? ""] : []),
    String(r.rounds),
    r.done ? "yes" : "no",
    pair(r.acc),
    pair(r.asr),
    pair(r.rob),
    ...(worst ? [pair(r.worst)] : []),
    formatDuration(r.seconds),
    r.where,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]))).join("  ");
  return [line(head), ...cells.map(line)];
}

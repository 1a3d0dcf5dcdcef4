/**
 * The self-contained HTML report of a purification run: one file, no scripts, and a
 * Content-Security-Policy that forbids every fetch except inline `data:` images, so it opens the
 * same offline, in a mail attachment or behind a strict proxy. Charts are inline SVG; images are
 * PNG data URIs. Every value that came from outside (class names, paths, params, server text) is
 * escaped.
 */
import { fmtEps } from "./evaluate.ts";
import { dataTable, escapeHtml, keyValueTable, pct } from "./html.ts";
import type { ReportData, RoundPoint, SampleItem, SamplePrediction } from "./report_data.ts";
import { type ChartSeries, lineChartSvg } from "./svg_chart.ts";

export type { RoundPoint } from "./report_data.ts";

/** Image data URIs the page embeds, by what they show. */
export interface ReportImages {
  /** Extra-set index → data URI of a flagged image. */
  flagged?: Map<number, string>;
  /** Per sample column (same order as `samples.items`). */
  samples?: {
    clean: string[];
    triggered: (string | undefined)[];
    adversarialBefore: (string | undefined)[];
    adversarialAfter: (string | undefined)[];
  };
}

const SERIES: [keyof RoundPoint, string, string][] = [
  ["clean_accuracy", "clean accuracy", "#1f77b4"],
  ["attack_success_rate", "attack success rate", "#d62728"],
  ["robust_accuracy", "robust accuracy", "#2ca02c"],
];

/** Drawn when the evaluation measured it (the ensemble, or PGD with its Square check). */
const WORST: [keyof RoundPoint, string, string] = [
  "worst_case_robust_accuracy",
  "worst-case robust accuracy",
  "#8c564b",
];

/** A line chart of the three figures (0-1) against the round number, as an SVG string. */
export function chartSvg(points: RoundPoint[]): string {
  const keys = points.some((p) => typeof p.worst_case_robust_accuracy === "number")
    ? [...SERIES, WORST]
    : SERIES;
  const series: ChartSeries[] = keys.map(([key, label, color]) => ({
    label,
    color,
    points: points.map((p) => ({ x: p.round, y: typeof p[key] === "number" ? p[key] : NaN })),
  }));
  const maxRound = Math.max(1, ...points.map((p) => p.round).filter(Number.isFinite));
  return lineChartSvg(series, {
    id: "chart-rounds",
    title: "clean accuracy, attack success rate and robust accuracy per round",
    xLabel: "round (0 = infected model)",
    yDomain: [0, 1],
    xDomain: [0, maxRound],
    yPercent: true,
    xIntegers: true,
  });
}

/** The ROC curve of the detection step, with the chance diagonal. */
export function rocSvg(roc: { fpr: number; tpr: number }[], auroc?: number): string {
  return lineChartSvg([{
    label: typeof auroc === "number" && Number.isFinite(auroc)
      ? `ROC (AUROC ${auroc.toFixed(3)})`
      : "ROC",
    color: "#9467bd",
    points: roc.map((p) => ({ x: p.fpr, y: p.tpr })),
  }], {
    id: "chart-roc",
    title: "detection ROC curve: true positive rate against false positive rate",
    xLabel: "false positive rate",
    yLabel: "true positive rate",
    xDomain: [0, 1],
    yDomain: [0, 1],
    xPercent: true,
    yPercent: true,
    diagonal: true,
    width: 520,
    height: 360,
  });
}

function className(names: string[] | undefined, c: number | undefined): string {
  if (c === undefined || c === null || !Number.isFinite(c)) return "—";
  const name = names?.[c];
  return name ? `${c} ${name}` : String(c);
}

function img(uri: string | undefined, alt: string): string {
  // Only our own PNG data URIs are embedded; anything else would be a fetch.
  if (!uri || !uri.startsWith("data:image/png;base64,")) return "";
  return `<img src="${escapeHtml(uri)}" alt="${escapeHtml(alt)}">`;
}

function predLine(
  names: string[] | undefined,
  which: string,
  pred: number | undefined,
  ok: number | undefined,
): string {
  if (pred === undefined) return "";
  const cls = ok === undefined ? "" : pred === ok ? ' class="ok"' : ' class="bad"';
  return `<div${cls}>${escapeHtml(which)}: ${escapeHtml(className(names, pred))}</div>`;
}

function sampleCell(
  names: string[] | undefined,
  p: SamplePrediction | undefined,
  truth: number,
  images: [string | undefined, string][],
): { html: string } {
  if (!p) return { html: "—" };
  return {
    html: `<div class="cell">${images.map(([u, alt]) => img(u, alt)).join("")}${
      predLine(names, "before", p.before, truth)
    }${predLine(names, "after", p.after, truth)}</div>`,
  };
}

function samplesTable(data: ReportData, images: ReportImages): string {
  const s = data.samples;
  if (!s || s.items.length === 0) return "<p>No sample images (the run had no test set).</p>";
  const names = data.class_names;
  const im = images.samples;
  const head = [
    "",
    ...s.items.map((it: SampleItem) => `#${it.index}: ${className(names, it.label)}`),
  ];
  const rows: (string | { html: string })[][] = [
    [
      "clean",
      ...s.items.map((it, i) =>
        sampleCell(names, it.clean, it.label, [[im?.clean[i], `clean test image ${it.index}`]])
      ),
    ],
    [
      "triggered",
      ...s.items.map((it, i) =>
        sampleCell(names, it.triggered, it.label, [[
          im?.triggered[i],
          `test image ${it.index} with the trigger`,
        ]])
      ),
    ],
    [
      "adversarial (PGD vs each model)",
      ...s.items.map((it, i) =>
        sampleCell(names, it.adversarial, it.label, [
          [im?.adversarialBefore[i], `PGD example of ${it.index} against the infected model`],
          [im?.adversarialAfter[i], `PGD example of ${it.index} against the purified model`],
        ])
      ),
    ],
  ];
  return `<p>Predictions of the infected model (before) and the purified model (after); green is
the true class. Adversarial row: the first image is PGD against the infected model (its "before"),
the second PGD against the purified model (its "after"); settings ${
    escapeHtml(attackText(s.attack))
  }.</p>${dataTable(head, rows, "samples")}`;
}

/** Attack settings for display: eps and step sizes that are k/255 written as such. */
function attackText(attack: Record<string, unknown>): string {
  return Object.entries(attack).map(([k, v]) =>
    `${k} ${
      (k === "eps" || k === "step_size") && typeof v === "number" ? fmtEps(v) : JSON.stringify(v)
    }`
  ).join(", ");
}

function detectionSection(data: ReportData, images: ReportImages): string {
  const d = data.detection;
  if (!d) return "<p>No detection step was run.</p>";
  const m = d.metrics ?? {};
  const figures = keyValueTable({
    method: d.method,
    images: d.n,
    flagged: d.flagged,
    "suspected target": className(data.class_names, d.suspected_target ?? undefined),
    precision: pct(m.precision),
    recall: pct(m.recall),
    F1: pct(m.f1),
    AUROC: typeof m.auroc === "number" ? m.auroc.toFixed(3) : "—",
    "seconds": d.seconds.toFixed(1),
  }, "detection");
  const roc = d.roc.length
    ? rocSvg(d.roc, m.auroc)
    : `<p>No ROC curve: it needs ground truth (<code>is_poison</code>) with both clean and
poisoned images.</p>${rocSvg([], undefined)}`;
  const cards = d.flagged_images.map((f) => {
    const truth = f.poisoned === undefined
      ? ""
      : f.poisoned
      ? '<div class="ok">truly poisoned</div>'
      : '<div class="bad">clean (false alarm)</div>';
    return `<figure class="flag">${img(images.flagged?.get(f.index), `extra image ${f.index}`)}
<figcaption>#${f.index} · given label ${
      escapeHtml(className(data.class_names, f.label))
    }<br>score ${
      escapeHtml(Number.isFinite(f.score) ? f.score.toPrecision(3) : "—")
    }${truth}</figcaption></figure>`;
  }).join("");
  return `${figures}<div class="row">${roc}</div>
<h3>Flagged images (${d.flagged_images.length} of ${d.flagged}, highest score first)</h3>
<p>Each caption names the image's label as given in the extra set: for a poisoned image that is
the attacker's label, not its true class.</p>
<div id="flagged" class="grid">${cards || "<p>Nothing was flagged.</p>"}</div>`;
}

function summaryTable(data: ReportData): string {
  const b = data.summary.before ?? {} as Partial<RoundPoint>;
  const a = data.summary.after ?? {} as Partial<RoundPoint>;
  const m = data.detection?.metrics ?? {};
  const pf = data.summary.purification_flags as {
    flagged: number;
    precision?: number | null;
    recall?: number | null;
  };
  return dataTable(["figure", "before (infected)", "after (purified)"], [
    ["clean accuracy", pct(b.clean_accuracy), pct(a.clean_accuracy)],
    ["attack success rate", pct(b.attack_success_rate), pct(a.attack_success_rate)],
    [
      `robust accuracy${attackNote(b, a)}`,
      pct(b.robust_accuracy),
      pct(a.robust_accuracy),
    ],
    ...robustRows(b, a),
    [
      "detection precision / recall / AUROC",
      data.detection
        ? `${pct(m.precision)} / ${pct(m.recall)} / ${
          typeof m.auroc === "number" ? m.auroc.toFixed(3) : "—"
        }`
        : "—",
      `purification flagged ${pf.flagged}` +
      (pf.precision !== undefined
        ? ` (precision ${pct(pf.precision)}, recall ${pct(pf.recall)})`
        : ""),
    ],
  ], "summary");
}

/** " (PGD-20 L-inf 8/255)": the robust attack in words, when the points name it. */
function attackNote(b: Partial<RoundPoint>, a: Partial<RoundPoint>): string {
  const what = a.robust_attack ?? b.robust_attack;
  return what ? ` (${what})` : "";
}

/**
 * Per-member robust accuracy (the ensemble, after each member in the order they ran), the worst
 * case and the masking check, before and after; nothing when the evaluation had none of them.
 */
function robustRows(b: Partial<RoundPoint>, a: Partial<RoundPoint>): string[][] {
  const rows: string[][] = [];
  const members = [
    ...new Set([...(b.robust_members ?? []), ...(a.robust_members ?? [])].map(
      (m) => m.member,
    )),
  ];
  const at = (p: Partial<RoundPoint>, m: string) =>
    pct(p.robust_members?.find((x) => x.member === m)?.robust_accuracy);
  for (const m of members) rows.push([`  robust accuracy after ${m}`, at(b, m), at(a, m)]);
  if (b.worst_case_robust_accuracy !== undefined || a.worst_case_robust_accuracy !== undefined) {
    rows.push([
      "worst-case robust accuracy (purification is judged on this)",
      pct(b.worst_case_robust_accuracy),
      pct(a.worst_case_robust_accuracy),
    ]);
  }
  const flag = (p: Partial<RoundPoint>) =>
    p.gradient_masking_suspected === undefined
      ? "—"
      : p.gradient_masking_suspected
      ? "SUSPECTED"
      : "no";
  if (b.gradient_masking_suspected !== undefined || a.gradient_masking_suspected !== undefined) {
    rows.push(["gradient masking", flag(b), flag(a)]);
  }
  return rows;
}

function roundsTable(points: RoundPoint[]): string {
  const worst = points.some((p) => p.worst_case_robust_accuracy !== undefined);
  return dataTable(
    [
      "round",
      "stage",
      ...SERIES.map(([, l]) => l),
      ...(worst ? ["worst-case robust accuracy"] : []),
      "round s",
      "eval s",
    ],
    points.map((p) => [
      p.round,
      String(p.stage ?? ""),
      ...SERIES.map(([k]) => pct(p[k])),
      ...(worst ? [pct(p.worst_case_robust_accuracy)] : []),
      typeof p.seconds === "number" ? p.seconds.toFixed(1) : "—",
      typeof p.eval_seconds === "number" ? p.eval_seconds.toFixed(1) : "—",
    ]),
    "rounds",
  );
}

const CSS =
  `body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
img{image-rendering:pixelated;width:56px;height:56px;margin:2px;border:1px solid #ccc}
.grid{display:flex;flex-wrap:wrap;gap:6px}.flag{margin:0;text-align:center;font-size:11px;width:92px}
.ok{color:#1a7f37}.bad{color:#c62828}.cell{font-size:12px}.row{display:flex;flex-wrap:wrap;gap:1em}
code{background:#f4f4f4;padding:0 3px}`;

/**
 * The whole page. Sections: summary (before/after), figures per round (chart and table),
 * detection (figures, ROC curve, flagged images), sample images, timings and backend, inputs and
 * settings.
 */
export function reportHtml(data: ReportData, images: ReportImages = {}): string {
  const csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title><style>${CSS}</style></head><body>
<h1>${escapeHtml(data.title)}</h1>
<p>${escapeHtml(data.created)} · server ${escapeHtml(data.server)} · backend ${
    escapeHtml(data.backend ?? "unknown")
  }${
    data.version ? ` · purifier ${escapeHtml(data.version)}` : ""
  } · ${data.summary.rounds} rounds${
    data.summary.done ? " (schedule done)" : " (schedule not finished)"
  }</p>
${
    data.notes?.length
      ? `<ul class="notes">${data.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`
      : ""
  }
<h2 id="s-summary">Before and after</h2>${summaryTable(data)}
<h2 id="s-rounds">Per round</h2>${chartSvg(data.points)}${roundsTable(data.points)}
<h2 id="s-detection">Poisoned-image detection</h2>${detectionSection(data, images)}
<h2 id="s-samples">Sample images</h2>${samplesTable(data, images)}
<h2 id="s-timings">Timings and backend</h2>${
    keyValueTable({
      backend: data.backend ?? "unknown",
      ...Object.fromEntries(
        Object.entries(data.timings).map(([k, v]) => [`${k} (s)`, v.toFixed(1)]),
      ),
    }, "timings")
  }
<h2 id="s-inputs">Inputs</h2>${keyValueTable(data.inputs, "inputs")}
<h2 id="s-settings">Settings</h2>${keyValueTable(data.settings, "settings")}
</body></html>
`;
}

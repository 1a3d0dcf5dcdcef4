/**
 * A self-contained HTML report (inline SVG, no scripts, no network fetches) of a purification run:
 * clean accuracy, attack success rate and robust accuracy per round, plus the run's settings.
 */
export interface RoundPoint {
  round: number;
  stage?: number | string;
  clean_accuracy?: number;
  attack_success_rate?: number;
  robust_accuracy?: number;
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const SERIES: [keyof RoundPoint, string, string][] = [
  ["clean_accuracy", "clean accuracy", "#1f77b4"],
  ["attack_success_rate", "attack success rate", "#d62728"],
  ["robust_accuracy", "robust accuracy", "#2ca02c"],
];

/** A line chart of the three figures (0-1) against the round number, as an SVG string. */
export function chartSvg(points: RoundPoint[]): string {
  const W = 640, H = 300, L = 50, R = 160, T = 20, B = 40;
  const maxRound = Math.max(1, ...points.map((p) => p.round));
  const x = (r: number) => L + (r / maxRound) * (W - L - R);
  const y = (v: number) => T + (1 - v) * (H - T - B);
  const parts: string[] = [];
  for (let v = 0; v <= 1.0001; v += 0.25) {
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${
        (v * 100).toFixed(0)
      }%</text>`,
    );
  }
  parts.push(
    `<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle" font-size="12">round</text>`,
  );
  SERIES.forEach(([key, label, color], i) => {
    const pts = points.filter((p) => typeof p[key] === "number");
    if (pts.length === 0) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p.round)},${y(p[key] as number)}`).join("");
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) {
      parts.push(
        `<circle cx="${x(p.round)}" cy="${y(p[key] as number)}" r="3" fill="${color}"><title>${
          esc(label)
        } round ${p.round}: ${((p[key] as number) * 100).toFixed(1)}%</title></circle>`,
      );
    }
    parts.push(
      `<rect x="${W - R + 10}" y="${T + i * 20}" width="12" height="12" fill="${color}"/>`,
      `<text x="${W - R + 28}" y="${T + i * 20 + 10}" font-size="12">${esc(label)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="figures per round">${
    parts.join("")
  }</svg>`;
}

/** The whole page. `settings` and `summary` are shown as tables of their top-level fields. */
export function reportHtml(opts: {
  title: string;
  settings: Record<string, unknown>;
  summary: Record<string, unknown>;
  points: RoundPoint[];
}): string {
  const table = (o: Record<string, unknown>) =>
    `<table>${
      Object.entries(o).map(([k, v]) =>
        `<tr><th>${esc(k)}</th><td>${
          esc(typeof v === "object" ? JSON.stringify(v) : String(v))
        }</td></tr>`
      ).join("")
    }</table>`;
  const rows = opts.points.map((p) =>
    `<tr><td>${p.round}</td><td>${esc(String(p.stage ?? ""))}</td>${
      SERIES.map(([k]) =>
        `<td>${typeof p[k] === "number" ? ((p[k] as number) * 100).toFixed(1) + "%" : "—"}</td>`
      ).join("")
    }</tr>`
  ).join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${
    esc(opts.title)
  }</title><style>body{font:14px/1.4 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}</style></head><body>
<h1>${esc(opts.title)}</h1><h2>Summary</h2>${table(opts.summary)}
<h2>Per round</h2>${chartSvg(opts.points)}
<table id="rounds"><tr><th>round</th><th>stage</th>${
    SERIES.map(([, l]) => `<th>${esc(l)}</th>`).join("")
  }</tr>${rows}</table>
<h2>Settings</h2>${table(opts.settings)}</body></html>`;
}

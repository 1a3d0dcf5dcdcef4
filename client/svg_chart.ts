/**
 * Inline SVG line charts for the report (no scripts, no fonts or styles fetched). Missing data is
 * expected: non-finite points are skipped and break the line, a series with no finite point is
 * left out of the plot (but kept in the legend, marked "no data"), and a chart with no data at all
 * still renders its axes and says so, so a page never shows a broken or empty figure.
 */
import { escapeHtml } from "./html.ts";

export interface ChartPoint {
  x: number;
  y: number;
}

export interface ChartSeries {
  label: string;
  /** A CSS colour; only `#rgb`/`#rrggbb` or a plain colour name is used as is. */
  color: string;
  points: ChartPoint[];
  /** Dashed line (e.g. a reference). */
  dashed?: boolean;
}

export interface LineChartOptions {
  /** Accessible name of the figure (`aria-label` and `<title>`). */
  title: string;
  xLabel: string;
  yLabel?: string;
  /** Axis ranges; by default the finite data's extent (x) and [0, 1] (y). */
  xDomain?: [number, number];
  yDomain?: [number, number];
  /** Tick labels of the y axis as percentages. */
  yPercent?: boolean;
  /** Tick labels of the x axis as percentages. */
  xPercent?: boolean;
  /** Only integer x ticks (e.g. rounds). */
  xIntegers?: boolean;
  /** Draw the y = x diagonal (a ROC chart's chance line). */
  diagonal?: boolean;
  width?: number;
  height?: number;
  /** `id` attribute of the `<svg>`. */
  id?: string;
}

const SAFE_COLOR = /^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-zA-Z]{1,20})$/;

/** Rounds a coordinate for compact output. */
const f = (v: number) => String(Math.round(v * 10) / 10);

function ticks(lo: number, hi: number, integers: boolean): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  if (integers) step = Math.max(1, Math.round(step));
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9; v += step) {
    out.push(Math.round(v * 1e9) / 1e9);
  }
  return out;
}

function tickLabel(v: number, percent: boolean): string {
  if (percent) return `${Math.round(v * 100)}%`;
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
}

/** The finite extent of the x values of every series, or undefined when there is none. */
function xExtent(series: ChartSeries[]): [number, number] | undefined {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) {
    for (const p of s.points) {
      if (Number.isFinite(p.x) && Number.isFinite(p.y)) {
        lo = Math.min(lo, p.x);
        hi = Math.max(hi, p.x);
      }
    }
  }
  return lo <= hi ? [lo, hi] : undefined;
}

/** Whether a point can be drawn. */
const drawable = (p: ChartPoint) => Number.isFinite(p.x) && Number.isFinite(p.y);

/**
 * A line chart as an `<svg>` string: grid, axes with ticks, one polyline (with point markers and
 * hover titles) per series and a legend. Safe with empty series, NaN and infinities, and a
 * single point (the x range is widened around it).
 */
export function lineChartSvg(series: ChartSeries[], o: LineChartOptions): string {
  const W = o.width ?? 640, H = o.height ?? 300;
  const L = 56, R = 190, T = 16, B = 44;
  const [y0, y1] = o.yDomain ?? [0, 1];
  let [x0, x1] = o.xDomain ?? xExtent(series) ?? [0, 1];
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
  const sx = (v: number) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const sy = (v: number) =>
    T + (1 - (Math.min(y1, Math.max(y0, v)) - y0) / (y1 - y0 || 1)) * (H - T - B);
  const parts: string[] = [`<title>${escapeHtml(o.title)}</title>`];
  for (const v of ticks(y0, y1, false)) {
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${f(sy(v))}" y2="${f(sy(v))}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${f(sy(v) + 4)}" text-anchor="end" font-size="11">${
        escapeHtml(tickLabel(v, o.yPercent ?? false))
      }</text>`,
    );
  }
  for (const v of ticks(x0, x1, o.xIntegers ?? false)) {
    parts.push(
      `<line x1="${f(sx(v))}" x2="${f(sx(v))}" y1="${H - B}" y2="${H - B + 4}" stroke="#888"/>`,
      `<text x="${f(sx(v))}" y="${H - B + 16}" text-anchor="middle" font-size="11">${
        escapeHtml(tickLabel(v, o.xPercent ?? false))
      }</text>`,
    );
  }
  parts.push(
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#888"/>`,
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#888"/>`,
    `<text x="${f((L + W - R) / 2)}" y="${H - 8}" text-anchor="middle" font-size="12">${
      escapeHtml(o.xLabel)
    }</text>`,
  );
  if (o.yLabel) {
    parts.push(
      `<text transform="translate(14 ${
        f((T + H - B) / 2)
      }) rotate(-90)" text-anchor="middle" font-size="12">${escapeHtml(o.yLabel)}</text>`,
    );
  }
  if (o.diagonal) {
    const a = Math.max(x0, y0), b = Math.min(x1, y1);
    if (b > a) {
      parts.push(
        `<line x1="${f(sx(a))}" y1="${f(sy(a))}" x2="${f(sx(b))}" y2="${
          f(sy(b))
        }" stroke="#999" stroke-dasharray="4 4"/>`,
      );
    }
  }
  let drawn = 0;
  series.forEach((s, i) => {
    const color = SAFE_COLOR.test(s.color) ? s.color : "#333";
    const inRange = s.points.filter((p) => drawable(p) && p.x >= x0 && p.x <= x1);
    // Non-finite points break the line into separate segments.
    let d = "", pen = false;
    for (const p of s.points) {
      if (!drawable(p) || p.x < x0 || p.x > x1) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${f(sx(p.x))},${f(sy(p.y))}`;
      pen = true;
    }
    if (d) {
      drawn++;
      parts.push(
        `<path class="series" d="${d}" fill="none" stroke="${color}" stroke-width="2"${
          s.dashed ? ' stroke-dasharray="6 3"' : ""
        }/>`,
      );
      // Markers only where they stay readable.
      if (inRange.length <= 60) {
        for (const p of inRange) {
          parts.push(
            `<circle cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="3" fill="${color}"><title>${
              escapeHtml(
                `${s.label}: ${tickLabel(p.x, o.xPercent ?? false)} → ${
                  o.yPercent ? `${(p.y * 100).toFixed(1)}%` : String(p.y)
                }`,
              )
            }</title></circle>`,
          );
        }
      }
    }
    const ly = T + i * 20;
    parts.push(
      `<rect x="${W - R + 12}" y="${ly}" width="12" height="12" fill="${color}"/>`,
      `<text x="${W - R + 30}" y="${ly + 10}" font-size="12">${
        escapeHtml(d ? s.label : `${s.label} (no data)`)
      }</text>`,
    );
  });
  if (drawn === 0) {
    parts.push(
      `<text class="no-data" x="${f((L + W - R) / 2)}" y="${
        f((T + H - B) / 2)
      }" text-anchor="middle" font-size="14" fill="#888">no data</text>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg"${
    o.id ? ` id="${escapeHtml(o.id)}"` : ""
  } width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${
    escapeHtml(o.title)
  }" data-series="${drawn}">${parts.join("")}</svg>`;
}

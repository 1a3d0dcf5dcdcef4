/**
 * HTML building blocks for the self-contained report: escaping and tables. Every value that may
 * come from a user (class names, file names, params, server messages) goes through `escapeHtml`,
 * which is safe both in element text and in double- or single-quoted attribute values.
 */

const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** `v` as text safe inside HTML elements and quoted attributes (null/undefined → ""). */
export function escapeHtml(v: unknown): string {
  const s = v === null || v === undefined ? "" : typeof v === "string" ? v : String(v);
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** A value as a table cell's text: objects as compact JSON, numbers as they are. */
export function cellText(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** A fraction as a percentage with one decimal, or "—" when it is not a finite number. */
export function pct(v: unknown): string {
  return typeof v === "number" && Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "—";
}

/** A two-column table of an object's top-level fields (keys and values escaped). */
export function keyValueTable(o: Record<string, unknown>, id?: string): string {
  const rows = Object.entries(o).map(([k, v]) =>
    `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(cellText(v))}</td></tr>`
  );
  return `<table${id ? ` id="${escapeHtml(id)}"` : ""}>${rows.join("")}</table>`;
}

/**
 * A table with a header row and body rows. Cells are plain text (escaped) unless given as
 * `{ html }`, which callers use only for markup they built themselves from escaped parts.
 */
export function dataTable(
  head: string[],
  rows: (string | number | { html: string })[][],
  id?: string,
): string {
  const cell = (c: string | number | { html: string }) =>
    typeof c === "object" ? c.html : escapeHtml(c);
  return `<table${id ? ` id="${escapeHtml(id)}"` : ""}><thead><tr>${
    head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join("")
  }</tr></thead><tbody>${
    rows.map((r) => `<tr>${r.map((c) => `<td>${cell(c)}</td>`).join("")}</tr>`).join("")
  }</tbody></table>`;
}

/**
 * `GET /docs`: the API reference as one self-contained HTML page, rendered from the OpenAPI
 * document (so from the same zod schemas that validate requests). Every endpoint gets its curl
 * example, its query parameters, its request parts, a table of every field of each JSON part
 * (name, type, bounds, default, description) and its reply (parts of a multipart reply, fields of
 * a JSON one). No script, no stylesheet or font is fetched: it reads the same with scripts off,
 * offline, or behind an air-gapped gateway, and its CSS wraps long names instead of overflowing.
 */
const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Escaped text with `backticked` spans as code. */
const inline = (s: string) => esc(s).replace(/`([^`]+)`/g, "<code>$1</code>");

/** A JSON Schema node as zod emits it (the keys this page reads). */
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  additionalProperties?: Schema | boolean;
  $ref?: string;
}

interface MediaType {
  schema?: Schema;
  encoding?: Record<string, { contentType?: string }>;
}

interface OperationDoc {
  summary?: string;
  description?: string;
  parameters?: { name: string; in: string; description?: string; schema: Schema }[];
  requestBody?: { content: Record<string, MediaType> };
  responses: Record<string, { description: string; content?: Record<string, MediaType> }>;
  security?: unknown[];
  "x-codeSamples"?: { lang: string; source: string }[];
}

interface Doc {
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, OperationDoc>>;
}

/** One row of a fields table. */
export interface FieldRow {
  name: string;
  type: string;
  bounds: string;
  default: string;
  description: string;
  required: boolean;
}

/** Safe-integer bounds zod puts on `z.int()` say nothing to a reader. */
const NO_BOUND = 2 ** 53 - 1;

/** `8/255 (0.0314)` for a small pixel budget that is a whole number of 255ths, else the number. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const k = x * 255;
  // Pixel budgets up to 64/255 that read badly as decimals (0.0313725…); 0.2 is 51/255 too, but
  // stays 0.2, and 1/3 is not a budget.
  if (x > 0 && k <= 64 && String(x).length > 8 && Math.abs(k - Math.round(k)) < 1e-9) {
    return `${Math.round(k)}/255 (${+x.toPrecision(3)})`;
  }
  return Number.isInteger(x) ? String(x) : String(+x.toPrecision(6));
}

function literal(v: unknown): string {
  return typeof v === "string" ? `"${v}"` : typeof v === "number" ? formatNumber(v) : String(v);
}

/** A short type label: `integer`, `"pgd" | "fgsm"`, `array of number`, `string | object`. */
export function typeLabel(s: Schema): string {
  if (s.const !== undefined) return literal(s.const);
  if (s.enum) return s.enum.map(literal).join(" | ");
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return [...new Set(alts.map(typeLabel))].join(" | ");
  if (s.$ref) return s.$ref.split("/").pop() ?? "object";
  const t = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
  if (t === "array") return `array of ${s.items ? typeLabel(s.items) : "any"}`;
  if (t === "string" && s.format === "binary") return "file";
  if (t === "object" && !s.properties && typeof s.additionalProperties === "object") {
    return `map of ${typeLabel(s.additionalProperties)}`;
  }
  return t ?? "any";
}

/** `0 < x ≤ 1`, `1 ≤ x ≤ 1000`, `1-4 items`, `length 1-40, ^[a-z]+$`. */
export function bounds(s: Schema): string {
  const out: string[] = [];
  const lo = s.exclusiveMinimum !== undefined
    ? `${formatNumber(s.exclusiveMinimum)} <`
    : s.minimum !== undefined && s.minimum > -NO_BOUND
    ? `${formatNumber(s.minimum)} ≤`
    : "";
  const hi = s.exclusiveMaximum !== undefined
    ? `< ${formatNumber(s.exclusiveMaximum)}`
    : s.maximum !== undefined && s.maximum < NO_BOUND
    ? `≤ ${formatNumber(s.maximum)}`
    : "";
  if (lo || hi) out.push([lo, "x", hi].filter(Boolean).join(" "));
  const range = (a?: number, b?: number) =>
    a !== undefined && b !== undefined
      ? a === b ? `${a}` : `${a}-${b}`
      : a !== undefined
      ? `≥ ${a}`
      : `≤ ${b}`;
  if (s.minLength !== undefined || s.maxLength !== undefined) {
    out.push(`length ${range(s.minLength, s.maxLength)}`);
  }
  if (s.minItems !== undefined || s.maxItems !== undefined) {
    out.push(`${range(s.minItems, s.maxItems)} items`);
  }
  if (s.pattern) out.push(`matches ${s.pattern}`);
  if (s.items && !s.items.properties) {
    const inner = bounds(s.items);
    if (inner) out.push(`each ${inner}`);
  }
  return out.join(", ");
}

function defaultLabel(v: unknown): string {
  if (v === undefined) return "";
  if (typeof v === "number") return formatNumber(v);
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** The object variants of a union, each with the properties that describe it. */
function objectVariants(s: Schema): Schema[] {
  return (s.anyOf ?? s.oneOf ?? []).filter((v) => v.properties);
}

/**
 * Every field of an object schema as rows, nested fields under dotted names (`backdoor.target`,
 * `stages[].epochs`), down to `maxDepth` levels.
 */
export function fieldRows(s: Schema, prefix = "", maxDepth = 6): FieldRow[] {
  const rows: FieldRow[] = [];
  const required = new Set(s.required ?? []);
  for (const [key, f] of Object.entries(s.properties ?? {})) {
    const name = `${prefix}${key}`;
    const fixed = f.const !== undefined || f.enum?.length === 1;
    rows.push({
      name,
      type: typeLabel(f),
      bounds: bounds(f),
      // An object's fields are rows of their own, each with its default.
      default: f.properties ? "" : defaultLabel(f.default),
      description: f.description ?? (fixed ? "selects this variant" : ""),
      required: required.has(key),
    });
    if (maxDepth <= 1) continue;
    if (f.properties) rows.push(...fieldRows(f, `${name}.`, maxDepth - 1));
    if (f.items?.properties) rows.push(...fieldRows(f.items, `${name}[].`, maxDepth - 1));
    // The variants of a union field, then of a union array's items.
    for (const [union, at] of [[f, name], [f.items ?? {}, `${name}[]`]] as const) {
      for (const v of objectVariants(union)) {
        const tag = discriminator(v);
        rows.push(...fieldRows(v, `${at}${tag ? `{${tag}}` : ""}.`, maxDepth - 1));
      }
    }
  }
  return rows;
}

/** `method=pud` for an object variant whose one property is a single fixed value. */
function discriminator(v: Schema): string | undefined {
  for (const [k, p] of Object.entries(v.properties ?? {})) {
    const one = p.const !== undefined ? p.const : p.enum?.length === 1 ? p.enum[0] : undefined;
    if (one !== undefined && (v.required ?? []).includes(k)) return `${k}=${String(one)}`;
  }
  return undefined;
}

/** Requests mark the fields one must send; replies mark the fields that may be absent. */
type Side = "request" | "reply";

function fieldsTable(rows: FieldRow[], caption: string, side: Side): string {
  if (rows.length === 0) return "";
  const mark = (r: FieldRow) =>
    side === "request"
      ? r.required ? ' <span class="req">required</span>' : ""
      : r.required
      ? ""
      : ' <span class="opt">optional</span>';
  const body = rows.map((r) =>
    `<tr><td><code>${esc(r.name).replace(/([.\]])/g, "$1<wbr>")}</code>${mark(r)}` +
    `</td><td>${esc(r.type)}</td><td>${esc(r.bounds)}</td><td>${
      r.default ? `<code>${esc(r.default)}</code>` : ""
    }</td><td>${inline(r.description)}</td></tr>`
  ).join("");
  return `<div class="tw"><table class="fields"><caption>${caption}</caption><thead><tr>` +
    `<th>name</th><th>type</th><th>bounds</th><th>default</th><th>description</th></tr></thead>` +
    `<tbody>${body}</tbody></table></div>`;
}

/** One fields table per variant of a discriminated union, else one table. */
function schemaTables(s: Schema, what: string, side: Side): string {
  const variants = objectVariants(s);
  if (variants.length > 0 && !s.properties) {
    return variants.map((v) => {
      const tag = discriminator(v);
      return fieldsTable(
        fieldRows(v),
        `${what}${tag ? ` with <code>${esc(tag.replace("=", ": "))}</code>` : ""}`,
        side,
      );
    }).join("");
  }
  return fieldsTable(fieldRows(s), what, side);
}

function isFile(s: Schema): boolean {
  return s.format === "binary" || (s.type === "array" && s.items?.format === "binary");
}

function partsTable(media: MediaType, caption: string, side: Side): string {
  const schema = media.schema ?? {};
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties ?? {}).map(([name, s]) => {
    const one = s.type === "array" && s.items ? s.items : s;
    const kind = isFile(s) ? (s.type === "array" ? "file(s)" : "file") : "JSON";
    const type = media.encoding?.[name]?.contentType ?? "";
    const need = side === "request" ? `<td>${required.has(name) ? "yes" : ""}</td>` : "";
    return `<tr><td><code>${esc(name)}</code></td>${need}<td>${kind}</td><td>${
      esc(type).replace(/, /g, ",<wbr> ")
    }</td><td>${inline(one.description ?? s.description ?? "")}</td></tr>`;
  }).join("");
  const need = side === "request" ? "<th>required</th>" : "";
  return `<div class="tw"><table class="parts"><caption>${caption}</caption><thead><tr>` +
    `<th>part</th>${need}<th>kind</th><th>content type</th><th>description</th></tr></thead>` +
    `<tbody>${rows}</tbody></table></div>`;
}

function queryTable(params: NonNullable<OperationDoc["parameters"]>): string {
  const rows = params.map((p) =>
    `<tr><td><code>${esc(p.name)}</code></td><td>${esc(typeLabel(p.schema))}</td><td>${
      esc(p.schema.default !== undefined ? defaultLabel(p.schema.default) : "")
    }</td><td>${inline(p.schema.description ?? p.description ?? "")}</td></tr>`
  ).join("");
  return `<div class="tw"><table class="query"><caption>Query parameters (all optional)` +
    `</caption><thead><tr><th>name</th><th>values</th><th>default</th><th>description</th>` +
    `</tr></thead><tbody>${rows}</tbody></table></div>`;
}

function replySection(op: OperationDoc): string {
  const ok = op.responses["200"];
  const content = ok?.content ?? {};
  const out: string[] = [];
  const multi = content["multipart/form-data"];
  if (multi) {
    out.push(partsTable(multi, "Reply: <code>multipart/form-data</code>, these parts", "reply"));
    for (const [name, s] of Object.entries(multi.schema?.properties ?? {})) {
      if (s.properties || objectVariants(s).length) {
        out.push(schemaTables(s, `Fields of the <code>${esc(name)}</code> part`, "reply"));
      }
    }
  } else {
    // A multipart reply's `?part=NAME` media types are its parts, listed above.
    const json = content["application/json"];
    if (json?.schema?.properties) {
      out.push(
        schemaTables(json.schema, "Reply: <code>application/json</code>, these fields", "reply"),
      );
    } else if (json) {
      out.push(`<p class="reply">Reply: <code>application/json</code>.</p>`);
    }
    const others = Object.keys(content).filter((t) => t !== "application/json");
    if (others.length) {
      out.push(`<p class="reply">Reply: <code>${esc(others.join(", "))}</code>.</p>`);
    }
  }
  const errors = Object.keys(op.responses).filter((c) => c !== "200");
  if (errors.length) {
    out.push(
      `<p class="errors">Errors: ${
        errors.map((c) => `<a href="#errors"><code>${c}</code></a>`).join(" ")
      }</p>`,
    );
  }
  return out.join("");
}

function anchor(method: string, path: string): string {
  return `${method}-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}`;
}

function operationSection(path: string, method: string, op: OperationDoc): string {
  const out = [
    `<section id="${anchor(method, path)}"><h2><span class="m">${method.toUpperCase()}</span> ` +
    `<code>${esc(path)}</code></h2>`,
    `<p class="summary">${esc(op.summary ?? "")}</p>`,
  ];
  if (op.description) out.push(`<p>${inline(op.description)}</p>`);
  if (op.security && op.security.length === 0) {
    out.push(`<p class="open">Open: no bearer token needed.</p>`);
  }
  for (const ex of op["x-codeSamples"] ?? []) {
    out.push(`<h3>Example</h3><pre class="ex"><code>${esc(ex.source)}</code></pre>`);
  }
  if (op.parameters?.length) out.push(queryTable(op.parameters));
  const multi = op.requestBody?.content["multipart/form-data"];
  if (multi) {
    out.push(
      partsTable(multi, "Request: <code>multipart/form-data</code>, these parts", "request"),
    );
    for (const [name, s] of Object.entries(multi.schema?.properties ?? {})) {
      if (multi.encoding?.[name]?.contentType === "application/json" && !isFile(s)) {
        out.push(
          schemaTables(s, `Fields of the JSON part <code>${esc(name)}</code>`, "request"),
        );
      }
    }
  }
  out.push(replySection(op), "</section>");
  return out.join("");
}

const CSS = `
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;margin:0;background:#fff}
main{max-width:78rem;margin:0 auto;padding:1rem 1.25rem 4rem}
h1{margin:.5rem 0}h1 small{font-weight:normal;color:#57606a;font-size:1rem}
h2{font-size:1.3rem;margin:0 0 .25rem;overflow-wrap:anywhere}h3{font-size:1rem;margin:1rem 0 .25rem}
section{border-top:2px solid #d0d7de;padding:1rem 0;margin-top:1rem}
.m{background:#0b3d62;color:#fff;padding:0 .45em;border-radius:4px;font-size:.9em}
.summary{font-weight:600;margin:.25rem 0}
code{font:0.88em/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.6rem .8rem;margin:.25rem 0 .75rem;
white-space:pre-wrap;overflow-wrap:anywhere}
.tw{max-width:100%;overflow-x:auto;margin:.5rem 0 1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;vertical-align:top;text-align:left;overflow-wrap:anywhere}
th{background:#f6f8fa;white-space:nowrap}
table.fields td:first-child{min-width:10rem;max-width:22rem}
table.fields td:nth-child(2),table.fields td:nth-child(3){min-width:6rem;max-width:16rem}
table.fields td:last-child{min-width:14rem}
.req,.opt{font-size:.75rem;color:#9a3412;white-space:nowrap}.opt{color:#57606a}
nav ul{columns:2 18rem;padding-left:1.2rem}
.open,.errors,.reply{color:#57606a}
@media (max-width:640px){
table,thead,tbody,tr,th,td,caption{display:block}
thead{display:none}
tr{border:1px solid #d0d7de;margin:0 0 .5rem;padding:.25rem}
td{border:0;padding:.1rem .25rem}
table.fields td:first-child,table.fields td:nth-child(2),table.fields td:nth-child(3),table.fields td:last-child{min-width:0;max-width:none}
}`;

export function renderDocs(openapi: unknown): string {
  const doc = openapi as Doc;
  const sections: string[] = [];
  const nav: string[] = [];
  let errorRows = "";
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      nav.push(
        `<li><a href="#${anchor(method, path)}"><code>${method.toUpperCase()} ${
          esc(path)
        }</code></a> ${esc(op.summary ?? "")}</li>`,
      );
      sections.push(operationSection(path, method, op));
      if (!errorRows && op.responses["422"]) {
        errorRows = Object.entries(op.responses).filter(([c]) => c !== "200").map(([c, r]) =>
          `<tr><td><code>${c}</code></td><td>${esc(r.description)}</td></tr>`
        ).join("");
      }
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${esc(doc.info.title)} API</title><style>${CSS}</style></head><body><main>` +
    `<h1>${esc(doc.info.title)} API <small>${esc(doc.info.version)}</small></h1>` +
    `<p>${inline(doc.info.description)}</p>` +
    `<p>Every example runs from the repository root against the fixture in ` +
    `<code>tests/fixtures/tiny_cnn/</code>, with the service on <code>localhost:8000</code> ` +
    `(<code>deno task start</code>). With <code>API_TOKEN</code> set, add ` +
    `<code>-H "Authorization: Bearer $API_TOKEN"</code> to every <code>/v1</code> call. ` +
    `Machine-readable: <a href="/openapi.json">/openapi.json</a>.</p>` +
    `<nav><h2>Endpoints</h2><ul>${nav.join("")}</ul></nav>` +
    `<section id="errors"><h2>Errors</h2><p>Every error is JSON: ` +
    `<code>{"error": {"code", "message", "details"}}</code>, with a stable <code>code</code> ` +
    `and a message that says what was wrong and what is allowed.</p>` +
    `<div class="tw"><table><thead><tr><th>status</th><th>meaning</th></tr></thead><tbody>` +
    `${errorRows}</tbody></table></div></section>` +
    `${sections.join("")}</main></body></html>`;
}

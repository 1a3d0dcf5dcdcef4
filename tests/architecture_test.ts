/**
 * The layering of ARCHITECTURE.md, enforced: every relative import in `src/`, `routes/` and
 * `client/` must go from a unit to one its row allows (type-only imports also to its `types:`
 * units), and every file must belong to a unit the table lists. The rules are read from the
 * document itself, so the two cannot drift apart.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));
const SCANNED = ["src", "routes", "client"];

interface Rule {
  values: Set<string>;
  types: Set<string>;
}

interface Import {
  /** Importing file, relative to the repository root. */
  from: string;
  /** Imported file, relative to the repository root. */
  to: string;
  typeOnly: boolean;
  line: number;
}

/** The rules of the table in ARCHITECTURE.md: unit → what it may import. */
function parseRules(markdown: string): Map<string, Rule> {
  const rules = new Map<string, Rule>();
  for (const row of markdown.split("\n")) {
    const cells = row.split("|").map((c) => c.trim());
    // | `unit` | owns | may import |
    if (cells.length !== 5 || !/^`[^`]+`$/.test(cells[1])) continue;
    const [values, types = ""] = cells[3].split(/;\s*types:/);
    const names = (s: string) => new Set([...s.matchAll(/`([^`]+)`/g)].map((m) => m[1]));
    rules.set(cells[1].slice(1, -1), { values: names(values), types: names(types) });
  }
  return rules;
}

/** The unit of a file: `src/<folder>` for files in a folder of `src/`, else the file or folder. */
function unitOf(path: string, rules: Map<string, Rule>): string | undefined {
  const parts = path.split("/");
  const unit = parts[0] !== "src" ? parts[0] : parts.length > 2 ? `src/${parts[1]}` : path;
  return rules.has(unit) ? unit : undefined;
}

/** Relative imports and re-exports of one source text (multi-line ones too). */
function importsOf(from: string, text: string): Import[] {
  const out: Import[] = [];
  const re = /^(import|export)\s+(type\s+)?([^;]*?)\bfrom\s+"(\.[^"]+)"/gms;
  for (const m of text.matchAll(re)) {
    const body = m[3].trim();
    const named = body.startsWith("{") && body.endsWith("}")
      ? body.slice(1, -1).split(",").map((s) => s.trim()).filter(Boolean)
      : [];
    const typeOnly = m[2] !== undefined ||
      (named.length > 0 && named.every((s) => s.startsWith("type ")));
    out.push({
      from,
      to: normalize(join(dirname(from), m[4])),
      typeOnly,
      line: text.slice(0, m.index).split("\n").length,
    });
  }
  return out;
}

/** Every import that breaks the rules, as a readable line. */
function violations(imports: Import[], rules: Map<string, Rule>): string[] {
  const bad: string[] = [];
  for (const i of imports) {
    const a = unitOf(i.from, rules), b = unitOf(i.to, rules);
    const at = `${i.from}:${i.line} imports ${i.to}`;
    if (a === undefined) bad.push(`${at}: ${i.from} is in no unit of ARCHITECTURE.md`);
    else if (b === undefined) bad.push(`${at}: ${i.to} is in no unit of ARCHITECTURE.md`);
    else if (a !== b) {
      const r = rules.get(a)!;
      const ok = r.values.has(b) || (i.typeOnly && r.types.has(b));
      if (!ok) bad.push(`${at}: ${a} may not import ${b}${i.typeOnly ? " (not even types)" : ""}`);
    }
  }
  return bad;
}

/** Pairs of units that import each other with value imports. */
function cycles(imports: Import[], rules: Map<string, Rule>): string[] {
  const edges = new Set<string>();
  for (const i of imports) {
    const a = unitOf(i.from, rules), b = unitOf(i.to, rules);
    if (a && b && a !== b && !i.typeOnly) edges.add(`${a} → ${b}`);
  }
  return [...edges].filter((e) => {
    const [a, b] = e.split(" → ");
    return a < b && edges.has(`${b} → ${a}`);
  });
}

async function sources(): Promise<{ path: string; text: string }[]> {
  const out: { path: string; text: string }[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(join(ROOT, dir))) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile && e.name.endsWith(".ts")) {
        out.push({ path: p, text: await Deno.readTextFile(join(ROOT, p)) });
      }
    }
  };
  for (const d of SCANNED) await walk(d);
  return out;
}

const rules = parseRules(await Deno.readTextFile(join(ROOT, "ARCHITECTURE.md")));

Deno.test("ARCHITECTURE.md's table names every unit and only lower units in each row", () => {
  for (const u of ["src/errors.ts", "src/random", "src/io", "src/purify", "routes", "client"]) {
    assert.ok(rules.has(u), u);
  }
  // Each row may only name rows above it: the table is a layering, so value imports never cycle.
  const order = [...rules.keys()];
  for (const [u, r] of rules) {
    for (const v of [...r.values, ...r.types]) {
      assert.ok(rules.has(v), `${u} names ${v}, which has no row`);
      if (!r.types.has(v)) assert.ok(order.indexOf(v) < order.indexOf(u), `${u} → ${v}`);
    }
  }
});

Deno.test("every import in src/, routes/ and client/ follows ARCHITECTURE.md", async () => {
  const files = await sources();
  assert.ok(files.length > 100, `only ${files.length} files found`);
  const imports = files.flatMap((f) => importsOf(f.path, f.text));
  assert.deepEqual(violations(imports, rules), []);
  assert.deepEqual(cycles(imports, rules), []);
  for (const f of files) assert.ok(unitOf(f.path, rules), `${f.path} is in no unit`);
});

Deno.test("the import check catches a planted violation, a cycle and a stray file", () => {
  const src = (from: string, text: string) => importsOf(from, text);
  const planted = [
    ...src("src/io/npy.ts", 'import { runRound } from "../purify/round.ts";'),
    ...src("src/purify/round.ts", 'import {\n  type ImageBatch,\n} from "../io/images.ts";'),
    ...src("src/purify/codec.ts", 'import { concatBytes } from "../io/bytes.ts";'),
    ...src("src/http/form.ts", 'import type { JobOutput } from "../engine/protocol.ts";'),
    ...src("src/http/reply.ts", 'import { Supervisor } from "../engine/supervisor.ts";'),
    ...src("client/purify.ts", 'export { runRound } from "../src/purify/round.ts";'),
    ...src("src/newfolder/x.ts", 'import { z } from "../io/npy.ts";'),
  ];
  const bad = violations(planted, rules);
  assert.equal(bad.length, 4, bad.join("\n"));
  assert.match(bad[0], /src\/io may not import src\/purify/);
  assert.match(bad[1], /src\/http may not import src\/engine/);
  assert.match(bad[2], /client may not import src\/purify/);
  assert.match(bad[3], /in no unit/);
  // The type-only multi-line import and the http → engine type import are allowed.
  assert.ok(planted[1].typeOnly && planted[3].typeOnly && !planted[4].typeOnly);
  assert.deepEqual(cycles(planted, rules), ["src/io → src/purify"]);
});

/**
 * Shared fuzzing set-up: run counts, mutation arbitraries for bytes and JSON, and the one
 * invariant every parser must keep (return a value, or throw an `HttpError`; nothing else).
 *
 * Counts: each property has a default small enough for CI (seconds); `FUZZ_RUNS=5000` runs every
 * property that many times, `FUZZ_SEED=n` replays a run (fast-check prints the seed and the path
 * of a failure), `FUZZ_REPORT=1` prints what each property's inputs ended as. Without `FUZZ_SEED`
 * the seed is fixed ({@link DEFAULT_SEED}), so the suite is the same on every run and CI cannot
 * fail by chance; `FUZZ_SEED=random` draws a fresh one (printed on failure) for exploratory runs.
 */
import fc from "fast-check";
import { HttpError } from "../../src/errors.ts";

/** Runs for one property: `FUZZ_RUNS` when set, else `defaultRuns`. */
export function runs(defaultRuns: number): number {
  const env = Number(Deno.env.get("FUZZ_RUNS"));
  return Number.isInteger(env) && env > 0 ? env : defaultRuns;
}

/** The seed of every property when `FUZZ_SEED` is unset. */
export const DEFAULT_SEED = 20261125;

/** fast-check parameters for a property with `defaultRuns` runs by default. */
export function params(defaultRuns: number): fc.Parameters<unknown> {
  const raw = Deno.env.get("FUZZ_SEED");
  const seed = raw === undefined || raw === "" ? DEFAULT_SEED : Number(raw);
  return {
    numRuns: runs(defaultRuns),
    ...(Number.isInteger(seed) ? { seed } : {}),
    // A shrink of a slow async property can take minutes; the seed and path suffice to replay.
    endOnFailure: Deno.env.get("FUZZ_SHRINK") !== "1",
  };
}

/** Tallies what each input ended as (status or "ok"), printed with `FUZZ_REPORT=1`. */
export class Outcomes {
  readonly counts = new Map<string, number>();
  constructor(readonly name: string) {}

  add(key: string | number): void {
    const k = String(key);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  report(): void {
    if (Deno.env.get("FUZZ_REPORT") !== "1") return;
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    const parts = [...this.counts.entries()].sort().map(([k, v]) => `${k}: ${v}`);
    console.log(`[fuzz] ${this.name}: ${total} inputs; ${parts.join(", ")}`);
  }
}

/**
 * Runs `fn` and returns `"ok"` or the status of the `HttpError` it threw. Any other exception is
 * a bug (it would be a 500) and is rethrown with the input's description for the report.
 */
export function outcome(fn: () => unknown): "ok" | number {
  try {
    fn();
    return "ok";
  } catch (e) {
    if (e instanceof HttpError) return e.status;
    throw e;
  }
}

/** {@link outcome} for async work. */
export async function outcomeAsync(fn: () => Promise<unknown>): Promise<"ok" | number> {
  try {
    await fn();
    return "ok";
  } catch (e) {
    if (e instanceof HttpError) return e.status;
    throw e;
  }
}

/** Fails when one input took longer than `ms` (a parser that crawls is a denial of service). */
export async function withinMs<T>(ms: number, what: string, fn: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  const out = await fn();
  const took = performance.now() - t0;
  if (took > ms) throw new Error(`${what} took ${took.toFixed(0)} ms (limit ${ms} ms)`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Byte mutations

/** One edit of a byte string; positions are taken modulo its length. */
export type ByteOp =
  | { k: "flip"; at: number; bit: number }
  | { k: "set"; at: number; v: number }
  | { k: "u32"; at: number; v: number; le: boolean }
  | { k: "insert"; at: number; bytes: Uint8Array }
  | { k: "delete"; at: number; len: number }
  | { k: "truncate"; at: number }
  | { k: "dup"; at: number; len: number };

/** Values that tend to sit on a boundary of a length, a dimension or a count. */
const EDGE_U32 = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];

export const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ k: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    k: fc.constant("set" as const),
    at: fc.nat(),
    v: fc.oneof(fc.constantFrom(0, 1, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })),
  }),
  fc.record({
    k: fc.constant("u32" as const),
    at: fc.nat(),
    v: fc.oneof(fc.constantFrom(...EDGE_U32), fc.nat()),
    le: fc.boolean(),
  }),
  fc.record({
    k: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }),
  }),
  fc.record({
    k: fc.constant("delete" as const),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({ k: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ k: fc.constant("dup" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
);

/** 1-4 edits; most inputs stay close to valid, which is where parsers are weakest. */
export const byteOps = fc.array(byteOp, { minLength: 1, maxLength: 4 });

/** `bytes` with `ops` applied (a fresh array; the input is untouched). */
export function mutateBytes(bytes: Uint8Array, ops: readonly ByteOp[]): Uint8Array {
  let b: Uint8Array = bytes.slice();
  for (const op of ops) {
    const n = b.length;
    const at = n === 0 ? 0 : op.at % n;
    switch (op.k) {
      case "flip":
        if (n) b[at] ^= 1 << op.bit;
        break;
      case "set":
        if (n) b[at] = op.v;
        break;
      case "u32":
        if (n >= 4) {
          const p = Math.min(at, n - 4);
          new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(p, op.v >>> 0, op.le);
        }
        break;
      case "insert":
        b = concat(b.subarray(0, at), op.bytes, b.subarray(at));
        break;
      case "delete":
        b = concat(b.subarray(0, at), b.subarray(at + op.len));
        break;
      case "truncate":
        b = b.slice(0, at);
        break;
      case "dup":
        b = concat(
          b.subarray(0, at + op.len),
          b.subarray(at, at + op.len),
          b.subarray(at + op.len),
        );
        break;
    }
  }
  return b;
}

export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON mutations

/** One structural edit of a JSON document; `at` picks a node modulo the node count. */
export type JsonOp =
  | { k: "replace"; at: number; v: unknown }
  | { k: "delete"; at: number }
  | { k: "number"; at: number; f: number }
  | { k: "string"; at: number; how: "truncate" | "append" | "char" | "empty"; s: string }
  | { k: "array"; at: number; how: "drop" | "dup" | "empty" | "reverse" }
  | { k: "addKey"; at: number; key: string; v: unknown };

/** Values at the edges of what schemas and parsers expect. */
const EDGE_JSON: unknown[] = [
  null,
  true,
  false,
  0,
  -0,
  -1,
  0.5,
  1e-320,
  2 ** 31,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 53 + 2,
  1e308,
  -1e308,
  "",
  "A",
  "====",
  "AAAA",
  "x".repeat(5000),
  "\u0000",
  "\ud800",
  [],
  [[]],
  {},
  [1, 2, 3],
  [-1, 1e9],
  // An own "__proto__" key, as JSON.parse makes it (an object literal would set the prototype).
  JSON.parse('{"__proto__": {"polluted": true}}'),
];

const jsonValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...EDGE_JSON) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

export const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  fc.record({ k: fc.constant("replace" as const), at: fc.nat(), v: jsonValue }),
  fc.record({ k: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({
    k: fc.constant("number" as const),
    at: fc.nat(),
    f: fc.constantFrom(-1, 0, 2, 1024, 1e6, 1e300, -0.5, 1.5, 2 ** 31),
  }),
  fc.record({
    k: fc.constant("string" as const),
    at: fc.nat(),
    how: fc.constantFrom("truncate" as const, "append" as const, "char" as const, "empty" as const),
    s: fc.string({ maxLength: 8 }),
  }),
  fc.record({
    k: fc.constant("array" as const),
    at: fc.nat(),
    how: fc.constantFrom("drop" as const, "dup" as const, "empty" as const, "reverse" as const),
  }),
  fc.record({
    k: fc.constant("addKey" as const),
    at: fc.nat(),
    key: fc.oneof(fc.constantFrom("__proto__", "constructor", "toString", "extra"), fc.string()),
    v: jsonValue,
  }),
);

export const jsonOps = fc.array(jsonOp, { minLength: 1, maxLength: 3 });

type Path = (string | number)[];

function nodes(v: unknown, path: Path = [], out: Path[] = []): Path[] {
  out.push(path);
  if (Array.isArray(v)) v.forEach((x, i) => nodes(x, [...path, i], out));
  else if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) nodes(x, [...path, k], out);
  }
  return out;
}

function get(v: unknown, path: Path): unknown {
  return path.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], v);
}

/** `doc` with `ops` applied to a deep copy. */
export function mutateJson(doc: unknown, ops: readonly JsonOp[]): unknown {
  let root = structuredClone(doc);
  for (const op of ops) {
    const all = nodes(root);
    const path = all[op.at % all.length];
    const node = get(root, path);
    const parent = path.length
      ? get(root, path.slice(0, -1)) as Record<string, unknown>
      : undefined;
    const key = path.at(-1)!;
    const put = (v: unknown) => {
      if (parent === undefined) root = v;
      else Object.defineProperty(parent, key, { value: v, enumerable: true, writable: true });
    };
    switch (op.k) {
      case "replace":
        put(structuredClone(op.v));
        break;
      case "delete":
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else if (parent) delete parent[key];
        break;
      case "number":
        if (typeof node === "number") put(op.f === 0 ? 0 : node * op.f || op.f);
        break;
      case "string":
        if (typeof node === "string") {
          put(
            op.how === "truncate"
              ? node.slice(0, Math.floor(node.length / 2))
              : op.how === "append"
              ? node + op.s
              : op.how === "empty"
              ? ""
              : node.length
              ? node.slice(0, op.at % node.length) + (op.s[0] ?? "!") +
                node.slice(op.at % node.length + 1)
              : op.s,
          );
        }
        break;
      case "array":
        if (Array.isArray(node)) {
          if (op.how === "drop") node.pop();
          else if (op.how === "dup" && node.length) node.push(structuredClone(node[0]));
          else if (op.how === "empty") node.length = 0;
          else node.reverse();
        }
        break;
      case "addKey":
        if (node !== null && typeof node === "object" && !Array.isArray(node)) {
          Object.defineProperty(node, op.key, {
            value: structuredClone(op.v),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        break;
    }
  }
  return root;
}

/** JSON text of `doc`, as a client would send it (`-0` and such come out as JSON writes them). */
export function jsonBytes(doc: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(doc) ?? "null");
}

/** The values {@link byteOps} and {@link jsonOps} generate. */
export type ByteOpList = readonly ByteOp[];
export type JsonOpList = readonly JsonOp[];

/**
 * One guarded JSON parse for every JSON document a user sends (`model.json`, `params`, `state`,
 * labels): size-capped, depth-limited before `JSON.parse` runs, and free of prototype-shaped keys.
 *
 * Why before: `JSON.parse` itself copes with any depth, but what runs on its result does not:
 * tfjs' config conversion, zod and canonical serialisation all recurse, so a 5,000-deep value
 * inside a `state` part overflowed the stack (a 500). Nesting is measured on the text by a linear,
 * iterative scan (brackets outside strings), so a hostile document costs one pass over its bytes
 * and never a deep object graph. Pure functions on bytes and text: callable from any thread.
 *
 * @module
 */
import { LimitExceededError, MalformedInputError } from "../errors.ts";

/** Deeper JSON than this is refused: Keras configs need about 12 levels per nesting of models. */
export const MAX_JSON_DEPTH = 64;

/** Keys that would reach object prototypes when a config is copied key by key. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set([
  "__proto__",
  "constructor",
  "prototype",
]);

/** What a document may be. */
export interface JsonGuard {
  /** Most nested arrays/objects (the root container counts as 1). Default {@link MAX_JSON_DEPTH}. */
  maxDepth?: number;
  /** Largest document in bytes (UTF-8). Default: no cap beyond the request body's. */
  maxBytes?: number;
  /** Refuse {@link FORBIDDEN_KEYS} anywhere in the document. Default true. */
  forbidPrototypeKeys?: boolean;
}

/** A short, safe rendering of a user-supplied value for error messages. */
export function showJson(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * The deepest nesting of arrays and objects in `text`, or the offset where it first exceeds
 * `limit`. Brackets inside strings (escapes included) do not count. Linear and iterative; it
 * does not validate the JSON, which `JSON.parse` does next.
 */
export function jsonDepth(text: string, limit = Infinity): { depth: number; overAt?: number } {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return { depth: max, overAt: i };
      }
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return { depth: max };
}

/**
 * Throws {@link MalformedInputError} when any object in the parsed `root` has one of
 * {@link FORBIDDEN_KEYS}. Iterative; `root` is already depth-bounded by {@link parseJsonText}.
 */
export function checkPrototypeKeys(root: unknown, what: string): void {
  const stack: [unknown, string][] = [[root, "$"]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (typeof v[i] === "object" && v[i] !== null) stack.push([v[i], `${path}[${i}]`]);
      }
      continue;
    }
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) {
        throw new MalformedInputError(
          `${what} has the key '${key}' at ${path}; the keys ` +
            `${[...FORBIDDEN_KEYS].map((k) => `'${k}'`).join(", ")} are not allowed`,
        );
      }
      const child = (v as Record<string, unknown>)[key];
      if (typeof child === "object" && child !== null) stack.push([child, `${path}.${key}`]);
    }
  }
}

/**
 * `JSON.parse` of `text` behind the guards: the depth scan first, then the parse, then the key
 * check. `what` names the document in messages ("model.json", "'state'").
 *
 * @throws {MalformedInputError} (400) invalid JSON, nesting deeper than `maxDepth`, or a
 *   prototype-shaped key.
 * @throws {LimitExceededError} (413) a text longer than `maxBytes` (counted in UTF-16 units,
 *   which never exceed the UTF-8 bytes).
 */
export function parseJsonText(text: string, what: string, guard: JsonGuard = {}): unknown {
  const maxDepth = guard.maxDepth ?? MAX_JSON_DEPTH;
  if (guard.maxBytes !== undefined && text.length > guard.maxBytes) {
    throw new LimitExceededError(
      `${what} is ${text.length} characters; at most ${guard.maxBytes} bytes are allowed`,
      { maxBytes: guard.maxBytes },
    );
  }
  const { overAt } = jsonDepth(text, maxDepth);
  if (overAt !== undefined) {
    throw new MalformedInputError(
      `${what} nests deeper than ${maxDepth} levels (at character ${overAt}); ` +
        `at most ${maxDepth} are allowed`,
      { maxDepth },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new MalformedInputError(`${what} is not valid JSON: ${showJson(why)}`);
  }
  if (guard.forbidPrototypeKeys ?? true) checkPrototypeKeys(doc, what);
  return doc;
}

/**
 * {@link parseJsonText} of UTF-8 `bytes`; the byte cap is checked before decoding.
 *
 * @throws {MalformedInputError} invalid UTF-8, and everything {@link parseJsonText} throws.
 */
export function parseJsonBytes(bytes: Uint8Array, what: string, guard: JsonGuard = {}): unknown {
  if (guard.maxBytes !== undefined && bytes.byteLength > guard.maxBytes) {
    throw new LimitExceededError(
      `${what} is ${bytes.byteLength} bytes; at most ${guard.maxBytes} are allowed`,
      { maxBytes: guard.maxBytes },
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new MalformedInputError(
      `${what} is not valid JSON: it is not valid UTF-8 (a JSON document must be UTF-8)`,
    );
  }
  return parseJsonText(text, what, guard);
}

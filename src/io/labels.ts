/**
 * Class labels from the wire: a `.npy` of integers or a JSON array of integers, checked against
 * the image count and the model's class count before any training or metric sees them.
 *
 * @module
 */
import { ensure, LimitExceededError, ShapeMismatchError, UnprocessableError } from "../errors.ts";
import { parseJsonBytes } from "./json_guard.ts";
import { parseNpy } from "./npy.ts";

/** Where the labels came from: the raw part bytes and which encoding they use. */
export interface LabelsInput {
  bytes: Uint8Array;
  kind: "npy" | "json";
}

/** What the labels must match: one per image, each in [0, numClasses). */
export interface LabelsExpectation {
  count: number;
  numClasses: number;
}

/**
 * Room per label in a JSON array: up to 10 digits, a sign, a separator and generous whitespace,
 * so a legitimate array is never refused and a huge one is refused before `JSON.parse` runs.
 */
const JSON_BYTES_PER_LABEL = 32;
const JSON_BYTES_SLACK = 1024;

/**
 * Parses labels: a `.npy` with an integer or boolean dtype (`bool` as 0/1, `uint8`, `int8`,
 * `int16`, `uint16`, `int32`, `uint32`, `int64`, `uint64`; values are range-checked, never
 * wrapped) of rank 1, or rank 2 with a trailing dim of 1; or a JSON array of integral
 * numbers (`1.0` is the same JSON number as `1` and is accepted) or of booleans only (0/1).
 *
 * @throws {MalformedInputError} a corrupt `.npy` or invalid JSON (including invalid UTF-8).
 * @throws {LimitExceededError} a JSON document far larger than `count` labels can need.
 * @throws {ShapeMismatchError} another rank or trailing dim, or a label count other than
 *   `expect.count`.
 * @throws {UnprocessableError} a float dtype, a non-array JSON document, an element that is
 *   not an integral number, or a label outside [0, numClasses) (named by index and value).
 */
export function parseLabels(input: LabelsInput, expect: LabelsExpectation): Int32Array {
  const labels = input.kind === "npy" ? fromNpy(input.bytes) : fromJson(input.bytes, expect.count);
  ensure(
    labels.length === expect.count,
    () =>
      new ShapeMismatchError(
        `${labels.length} labels were sent for ${expect.count} images; send exactly one per image`,
        { labels: labels.length, images: expect.count },
      ),
  );
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    // `bigint` and `number` compare correctly with each other, so int64 needs no special path.
    if (v < 0 || v >= expect.numClasses) {
      throw new UnprocessableError(
        `label ${v} at index ${i} is out of range; labels must be integers in [0, ${
          expect.numClasses - 1
        }] for a model with ${expect.numClasses} classes`,
        { index: i, value: String(v), numClasses: expect.numClasses },
      );
    }
    out[i] = Number(v);
  }
  return out;
}

/** Integer dtypes numpy users save labels in; `bool` is 0/1 (e.g. `is_poison` masks). */
const INTEGER_DTYPES = new Set([
  "bool",
  "uint8",
  "int8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
]);

function fromNpy(bytes: Uint8Array): ArrayLike<number | bigint> {
  const arr = parseNpy(bytes);
  ensure(
    INTEGER_DTYPES.has(arr.dtype),
    () =>
      new UnprocessableError(
        `labels .npy must have an integer dtype (int64, int32, uint8, ...); got ${arr.dtype}` +
          (arr.dtype.startsWith("float") ? " (convert with y.astype('int64'))" : ""),
        { dtype: arr.dtype },
      ),
  );
  const s = arr.shape;
  ensure(
    s.length === 1 || (s.length === 2 && s[1] === 1),
    () =>
      new ShapeMismatchError(
        `labels .npy must have shape (N,) or (N, 1); got (${s.join(", ")})`,
        { shape: s },
      ),
  );
  return arr.data as ArrayLike<number | bigint>;
}

function fromJson(bytes: Uint8Array, count: number): number[] {
  const cap = count * JSON_BYTES_PER_LABEL + JSON_BYTES_SLACK;
  ensure(
    bytes.length <= cap,
    () =>
      new LimitExceededError(
        `labels JSON is ${bytes.length} bytes; ${count} labels need at most ${cap}`,
        { bytes: bytes.length, maxBytes: cap },
      ),
  );
  // A flat array needs depth 1; the guard keeps nested junk from costing more than a scan.
  const doc = parseJsonBytes(bytes, "labels");
  ensure(
    Array.isArray(doc),
    () =>
      new UnprocessableError(
        `labels JSON must be a flat array of integers like [0, 3, 1]; got ${describe(doc)}`,
      ),
  );
  // A JSON array of booleans is what json.dumps(mask.tolist()) writes for a bool mask (is_poison):
  // 0/1, as a bool .npy is. Mixed booleans and numbers stay an error.
  if (doc.length > 0 && doc.every((v) => typeof v === "boolean")) {
    return doc.map((v) => (v ? 1 : 0));
  }
  for (let i = 0; i < doc.length; i++) {
    const v = doc[i];
    ensure(
      typeof v === "number" && Number.isInteger(v),
      () =>
        new UnprocessableError(
          `label at index ${i} is ${describe(v)}; labels must be integers`,
          { index: i },
        ),
    );
  }
  return doc as number[];
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  if (typeof v === "number") return `the number ${v}`;
  if (typeof v === "string") return `the string ${JSON.stringify(v.slice(0, 40))}`;
  return `a${typeof v === "object" ? "n object" : ` ${typeof v}`}`;
}

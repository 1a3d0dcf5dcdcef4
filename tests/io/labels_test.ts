import assert from "node:assert/strict";
import {
  HttpError,
  LimitExceededError,
  MalformedInputError,
  ShapeMismatchError,
  UnprocessableError,
} from "../../src/errors.ts";
import { parseLabels } from "../../src/io/labels.ts";
import { encodeNpy, type NpyInput } from "../../src/io/npy.ts";

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => HttpError;

function throwsHttp(fn: () => unknown, cls: ErrorClass, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

const json = (text: string) => ({ bytes: new TextEncoder().encode(text), kind: "json" as const });
const npy = (arr: NpyInput) => ({ bytes: encodeNpy(arr), kind: "npy" as const });
const TEN = { count: 3, numClasses: 10 };

Deno.test("parseLabels() reads a JSON array of integers, 1.0 and -0 included", () => {
  assert.deepEqual(parseLabels(json("[0, 9, 3]"), TEN), Int32Array.from([0, 9, 3]));
  assert.deepEqual(parseLabels(json(" [1.0, 2e0, -0]\n"), TEN), Int32Array.from([1, 2, 0]));
});

Deno.test("parseLabels() reads integer .npy of rank 1 or (N, 1) in every integer dtype", () => {
  const dtypes = [
    "uint8",
    "int8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
  ] as const;
  for (const dtype of dtypes) {
    assert.deepEqual(
      parseLabels(npy({ dtype, shape: [3], data: [4, 0, 9] }), TEN),
      Int32Array.from([4, 0, 9]),
      dtype,
    );
  }
  const column = npy({ dtype: "int64", shape: [3, 1], data: new BigInt64Array([1n, 2n, 3n]) });
  assert.deepEqual(parseLabels(column, TEN), Int32Array.from([1, 2, 3]));
});

Deno.test("parseLabels() requires an integer dtype in .npy, even for integral floats", () => {
  throwsHttp(
    () => parseLabels(npy({ dtype: "float32", shape: [3], data: [1, 2, 3] }), TEN),
    UnprocessableError,
    /integer dtype .* got float32 \(convert with y\.astype\('int64'\)\)/,
  );
  throwsHttp(
    () => parseLabels(npy({ dtype: "float64", shape: [3], data: [1, 2, 3] }), TEN),
    UnprocessableError,
    /got float64/,
  );
});

/** A little-endian `.npy` with a hand-written `descr` and raw data bytes (what numpy writes). */
function rawNpy(descr: string, n: number, data: Uint8Array) {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${n},), }`;
  const pad = (64 - ((10 + dict.length + 1) % 64)) % 64;
  const header = new TextEncoder().encode(dict + " ".repeat(pad) + "\n");
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(header, 10);
  out.set(data, 10 + header.length);
  return { bytes: out, kind: "npy" as const };
}

Deno.test("parseLabels() reads a JSON array of booleans as 0/1, but not booleans mixed with numbers", () => {
  assert.deepEqual(
    parseLabels(json("[true, false, true]"), { count: 3, numClasses: 2 }),
    Int32Array.from([1, 0, 1]),
  );
  throwsHttp(
    () => parseLabels(json("[true, 0, 1]"), { count: 3, numClasses: 2 }),
    UnprocessableError,
    /index 0 is a boolean/,
  );
});

Deno.test("parseLabels() accepts boolean .npy as 0/1 labels (is_poison masks, two-class labels)", () => {
  const two = { count: 4, numClasses: 2 };
  assert.deepEqual(
    parseLabels(npy({ dtype: "bool", shape: [4], data: [1, 0, 0, 1] }), two),
    Int32Array.from([1, 0, 0, 1]),
  );
  // numpy writes True as 1, but any non-zero byte is True: never a label 255.
  assert.deepEqual(
    parseLabels(rawNpy("|b1", 4, Uint8Array.from([0, 255, 2, 1])), two),
    Int32Array.from([0, 1, 1, 1]),
  );
  const column = npy({ dtype: "bool", shape: [4, 1], data: [0, 0, 1, 1] });
  assert.deepEqual(parseLabels(column, two), Int32Array.from([0, 0, 1, 1]));
  // A bool is still checked against the class count: one class cannot hold a 1.
  throwsHttp(
    () =>
      parseLabels(npy({ dtype: "bool", shape: [4], data: [1, 0, 0, 1] }), {
        count: 4,
        numClasses: 1,
      }),
    UnprocessableError,
    /label 1 at index 0 is out of range/,
  );
});

Deno.test("parseLabels() accepts narrow and unsigned integer dtypes, uint64 included, range-checked not wrapped", () => {
  const u8 = new Uint8Array(24);
  const v = new DataView(u8.buffer);
  [7n, 0n, 9n].forEach((x, i) => v.setBigUint64(8 * i, x, true));
  assert.deepEqual(parseLabels(rawNpy("<u8", 3, u8), TEN), Int32Array.from([7, 0, 9]));
  // 2^64 - 1 must be refused as out of range, not wrapped to -1 or read as a float.
  v.setBigUint64(8, 0xffffffffffffffffn, true);
  throwsHttp(
    () => parseLabels(rawNpy("<u8", 3, u8), TEN),
    UnprocessableError,
    /label 18446744073709551615 at index 1 is out of range/,
  );
  // int8 -1 is out of range (not 255); uint16 300 is out of range for 10 classes.
  throwsHttp(
    () => parseLabels(rawNpy("|i1", 3, Uint8Array.from([1, 0xff, 2])), TEN),
    UnprocessableError,
    /label -1 at index 1/,
  );
  throwsHttp(
    () => parseLabels(npy({ dtype: "uint16", shape: [3], data: [1, 300, 2] }), TEN),
    UnprocessableError,
    /label 300 at index 1/,
  );
  // Big-endian narrow ints are converted.
  assert.deepEqual(
    parseLabels(rawNpy(">i2", 3, Uint8Array.from([0, 3, 0, 0, 0, 9])), TEN),
    Int32Array.from([3, 0, 9]),
  );
});

Deno.test("parseLabels() names the index and value of a label outside [0, numClasses)", () => {
  for (
    const [input, pattern] of [
      [json("[0, -1, 2]"), /label -1 at index 1 is out of range.*\[0, 9\]/],
      [json("[0, 1, 10]"), /label 10 at index 2/],
      [npy({ dtype: "int16", shape: [3], data: [0, 1, -5] }), /label -5 at index 2/],
      [npy({ dtype: "uint8", shape: [3], data: [200, 1, 2] }), /label 200 at index 0/],
    ] as const
  ) {
    throwsHttp(() => parseLabels(input, TEN), UnprocessableError, pattern);
  }
});

Deno.test("parseLabels() refuses int64 values beyond int32 without losing precision", () => {
  const big = new BigInt64Array([0n, 2n ** 40n + 1n, 1n]);
  throwsHttp(
    () => parseLabels(npy({ dtype: "int64", shape: [3], data: big }), TEN),
    UnprocessableError,
    /label 1099511627777 at index 1/,
  );
  const wraps = new BigInt64Array([0n, 2n ** 32n + 1n, 1n]); // would wrap to 1 as int32
  throwsHttp(
    () => parseLabels(npy({ dtype: "int64", shape: [3], data: wraps }), TEN),
    UnprocessableError,
    /4294967297/,
  );
});

Deno.test("parseLabels() refuses a label count other than the image count", () => {
  throwsHttp(
    () => parseLabels(json("[0, 1]"), TEN),
    ShapeMismatchError,
    /2 labels were sent for 3 images/,
  );
  throwsHttp(
    () => parseLabels(npy({ dtype: "int32", shape: [4], data: [0, 1, 2, 3] }), TEN),
    ShapeMismatchError,
    /4 labels were sent for 3 images/,
  );
});

Deno.test("parseLabels() refuses .npy shapes other than (N,) and (N, 1)", () => {
  for (const shape of [[3, 2], [1, 3], [], [3, 1, 1]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    throwsHttp(
      () => parseLabels(npy({ dtype: "int32", shape, data: new Array(n).fill(0) }), TEN),
      ShapeMismatchError,
      /shape \(N,\) or \(N, 1\)/,
    );
  }
});

Deno.test("parseLabels() refuses JSON that is not a flat array of integers", () => {
  for (
    const [text, pattern] of [
      ['{"labels": [0, 1, 2]}', /flat array .* got an object/],
      ["3", /got the number 3/],
      ["[0, [1], 2]", /index 1 is an array/],
      ['[0, "1", 2]', /index 1 is the string "1"/],
      ["[0, 1.5, 2]", /index 1 is the number 1\.5/],
      ["[0, null, 2]", /index 1 is null/],
      ["[true, 1, 2]", /index 0 is a boolean/],
      ["[0, 1e400, 2]", /index 1 is the number Infinity/],
    ] as const
  ) {
    throwsHttp(() => parseLabels(json(text), TEN), UnprocessableError, pattern);
  }
});

Deno.test("parseLabels() refuses invalid JSON, invalid UTF-8 and corrupt .npy as malformed", () => {
  throwsHttp(() => parseLabels(json("[0, 1,"), TEN), MalformedInputError, /not valid JSON/);
  throwsHttp(() => parseLabels(json("[0, 1, 2] x"), TEN), MalformedInputError, /not valid JSON/);
  const latin1 = { bytes: Uint8Array.from([0x5b, 0xe9, 0x5d]), kind: "json" as const };
  throwsHttp(() => parseLabels(latin1, TEN), MalformedInputError, /not valid JSON/);
  const cut = npy({ dtype: "int32", shape: [3], data: [0, 1, 2] });
  cut.bytes = cut.bytes.subarray(0, cut.bytes.length - 1);
  throwsHttp(() => parseLabels(cut, TEN), MalformedInputError, /truncated/);
});

Deno.test("parseLabels() refuses JSON far larger than the expected count before parsing it", () => {
  const huge = json("[0, 1, 2" + " ".repeat(5000) + "]");
  throwsHttp(() => parseLabels(huge, TEN), LimitExceededError, /3 labels need at most 1120/);
  const many = json(JSON.stringify(new Array(100_000).fill(1)));
  throwsHttp(() => parseLabels(many, TEN), LimitExceededError, /labels JSON is 200001 bytes/);
  // Generous whitespace for a legitimate array is still fine.
  assert.equal(parseLabels(json(`[\n  0,\n  1,\n  2\n]`), TEN).length, 3);
});

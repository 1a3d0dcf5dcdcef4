import assert from "node:assert/strict";
import fc from "fast-check";
import {
  HttpError,
  LimitExceededError,
  MalformedInputError,
  ShapeMismatchError,
} from "../../src/errors.ts";
import { encodeNpy, type NdArray, type NpyDtype, parseNpy } from "../../src/io/npy.ts";

const DTYPES: NpyDtype[] = [
  "uint8",
  "int32",
  "int64",
  "float32",
  "float64",
  "bool",
  "int8",
  "int16",
  "uint16",
  "uint32",
  "uint64",
];
const ITEMSIZE: Record<NpyDtype, number> = {
  uint8: 1,
  bool: 1,
  int8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  float32: 4,
  float64: 8,
};

/** Builds a .npy by hand: any header text, padded to 64 with a final newline, then `data`. */
function npy(header: string, data: Uint8Array = new Uint8Array(), major = 1): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const padded = header + " ".repeat((64 - ((prefix + header.length + 1) % 64)) % 64) + "\n";
  const out = new Uint8Array(prefix + padded.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, padded.length, true);
  else view.setUint32(8, padded.length, true);
  for (let i = 0; i < padded.length; i++) out[prefix + i] = padded.charCodeAt(i);
  out.set(data, prefix + padded.length);
  return out;
}

function dict(descr: string, shape: string, fortran = "False"): string {
  return `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => HttpError;

function throwsHttp(fn: () => unknown, cls: ErrorClass, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

function bytesOf(arr: NdArray["data"]): Uint8Array {
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

Deno.test("encodeNpy() then parseNpy() round-trips every supported dtype", () => {
  const values = [0, 1, 0, 1, 1, 0];
  for (const dtype of DTYPES) {
    const file = encodeNpy({ dtype, shape: [2, 3], data: values });
    assert.equal(file[6], 1, `${dtype} uses format 1.0`);
    const headerLen = new DataView(file.buffer).getUint16(8, true);
    assert.equal((10 + headerLen) % 64, 0, "data starts on a 64-byte boundary, as numpy writes");
    const back = parseNpy(file);
    assert.equal(back.dtype, dtype);
    assert.deepEqual(back.shape, [2, 3]);
    const got = Array.from(back.data as ArrayLike<number | bigint>, Number);
    assert.deepEqual(got, values, dtype);
  }
});

Deno.test("encodeNpy() writes the header numpy writes", () => {
  const file = encodeNpy({ dtype: "float32", shape: [5], data: new Float32Array(5) });
  const headerLen = new DataView(file.buffer).getUint16(8, true);
  const header = new TextDecoder().decode(file.subarray(10, 10 + headerLen));
  assert.equal(header.trimEnd(), "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }");
  assert.equal(header.at(-1), "\n");
  const u8 = encodeNpy({ dtype: "uint8", shape: [], data: [7] });
  assert.match(new TextDecoder().decode(u8.subarray(10, 70)), /'descr': '\|u1'.*'shape': \(\)/);
  assert.deepEqual(parseNpy(u8), { dtype: "uint8", shape: [], data: new Uint8Array([7]) });
});

Deno.test("encodeNpy() keeps int64 values exact from a BigInt64Array or safe integers", () => {
  const big = new BigInt64Array([-(2n ** 62n), 2n ** 62n, 5n]);
  assert.deepEqual(parseNpy(encodeNpy({ dtype: "int64", shape: [3], data: big })).data, big);
  const safe = [Number.MAX_SAFE_INTEGER, -1];
  const back = parseNpy(encodeNpy({ dtype: "int64", shape: [2], data: safe })).data;
  assert.deepEqual(back, new BigInt64Array([BigInt(Number.MAX_SAFE_INTEGER), -1n]));
});

Deno.test("encodeNpy() refuses data that does not fit the shape or the integer dtype", () => {
  throwsHttp(
    () => encodeNpy({ dtype: "float32", shape: [2, 2], data: [1, 2, 3] }),
    ShapeMismatchError,
    /3 values but shape \(2, 2\) needs 4/,
  );
  throwsHttp(
    () => encodeNpy({ dtype: "uint8", shape: [1], data: [256] }),
    ShapeMismatchError,
    /256 at index 0 does not fit dtype uint8/,
  );
  throwsHttp(
    () => encodeNpy({ dtype: "int32", shape: [1], data: [0.5] }),
    ShapeMismatchError,
    /0\.5/,
  );
  throwsHttp(
    () => encodeNpy({ dtype: "float32", shape: [-1], data: [] }),
    ShapeMismatchError,
    /invalid dim -1/,
  );
});

Deno.test("encodeNpy() switches to a 2.0 header only when the header outgrows 65535 bytes", () => {
  const shape = new Array(30000).fill(1);
  const file = encodeNpy({ dtype: "uint8", shape, data: [9] });
  assert.equal(file[6], 2);
  const headerLen = new DataView(file.buffer).getUint32(8, true);
  assert.ok(headerLen > 0xffff);
  assert.equal((12 + headerLen) % 64, 0);
  assert.equal(file[12 + headerLen - 1], 0x0a);
  assert.equal(file[file.length - 1], 9);
});

Deno.test("parseNpy() reads hand-written 2.0 and 3.0 headers", () => {
  for (const major of [2, 3]) {
    const file = npy(dict("<f4", "(2,)"), f32Bytes([0.25, -3]), major);
    const arr = parseNpy(file);
    assert.deepEqual(arr, { dtype: "float32", shape: [2], data: new Float32Array([0.25, -3]) });
  }
});

Deno.test("parseNpy() byte-swaps big-endian data instead of refusing it", () => {
  const be = new Uint8Array(8);
  new DataView(be.buffer).setFloat32(0, 1.5, false);
  new DataView(be.buffer).setFloat32(4, -2, false);
  assert.deepEqual(parseNpy(npy(dict(">f4", "(2,)"), be)).data, new Float32Array([1.5, -2]));
  const be64 = new Uint8Array(8);
  new DataView(be64.buffer).setBigInt64(0, -(2n ** 40n), false);
  assert.deepEqual(
    parseNpy(npy(dict(">i8", "(1,)"), be64)).data,
    new BigInt64Array([-(2n ** 40n)]),
  );
});

Deno.test("parseNpy() accepts '=' and '|' byte orders and numpy's older header spellings", () => {
  const one = new Uint8Array(new Int32Array([7]).buffer);
  assert.deepEqual(parseNpy(npy(dict("=i4", "(1,)"), one)).data, new Int32Array([7]));
  assert.deepEqual(parseNpy(npy(dict("|i4", "(1,)"), one)).data, new Int32Array([7]));
  // Python 2 numpy wrote long dims with an L suffix and keys in any order.
  const py2 = "{'shape': (1L, 1L), 'descr': '<i4', 'fortran_order': False}";
  assert.deepEqual(parseNpy(npy(py2, one)).shape, [1, 1]);
  // Old numpy aligned to 16 bytes, not 64; the offset must not matter.
  const h = "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }";
  const raw = new Uint8Array([...npy(h).subarray(0, 10), ...new TextEncoder().encode(h + "\n")]);
  new DataView(raw.buffer).setUint16(8, h.length + 1, true);
  assert.deepEqual(parseNpy(new Uint8Array([...raw, 3, 4])).data, new Uint8Array([3, 4]));
});

Deno.test("parseNpy() normalises bool bytes to 0 and 1", () => {
  const arr = parseNpy(npy(dict("|b1", "(3,)"), new Uint8Array([0, 1, 2])));
  assert.equal(arr.dtype, "bool");
  assert.deepEqual(arr.data, new Uint8Array([0, 1, 1]));
});

Deno.test("parseNpy() reads scalars and empty arrays", () => {
  assert.deepEqual(parseNpy(npy(dict("<f4", "()"), f32Bytes([2.5]))).data, new Float32Array([2.5]));
  const empty = parseNpy(npy(dict("<f4", "(0, 3)")));
  assert.deepEqual(empty.shape, [0, 3]);
  assert.equal(empty.data.length, 0);
});

Deno.test("parseNpy() copies data at an unaligned offset into an aligned buffer", () => {
  const file = encodeNpy({ dtype: "float64", shape: [3], data: [1.5, -2, 1e300] });
  const host = new Uint8Array(file.length + 3);
  host.set(file, 3);
  const arr = parseNpy(host.subarray(3));
  assert.ok(arr.data instanceof Float64Array);
  assert.equal(arr.data.byteOffset, 0);
  assert.deepEqual(arr.data, new Float64Array([1.5, -2, 1e300]));
  host[host.length - 1] ^= 0xff;
  assert.equal((arr.data as Float64Array)[2], 1e300, "the result does not alias the input");
});

Deno.test("parseNpy() accepts fortran_order True only where it equals C order", () => {
  const file = npy(dict("<f4", "(1, 3)", "True"), f32Bytes([1, 2, 3]));
  assert.deepEqual(parseNpy(file).data, new Float32Array([1, 2, 3]));
  throwsHttp(
    () => parseNpy(npy(dict("<f4", "(2, 3)", "True"), f32Bytes([1, 2, 3, 4, 5, 6]))),
    MalformedInputError,
    /fortran_order True is not supported/,
  );
});

// Each case: a name, the bytes, the error class, and what the message must say.
const HOSTILE: [string, Uint8Array, ErrorClass, RegExp][] = [
  ["an empty file", new Uint8Array(), MalformedInputError, /empty/],
  ["a truncated magic", new Uint8Array([0x93, 0x4e, 0x55]), MalformedInputError, /magic/],
  ["a wrong magic", new TextEncoder().encode("PK\x03\x04 not numpy"), MalformedInputError, /magic/],
  ["a file cut inside the version", npy("").subarray(0, 7), MalformedInputError, /version/],
  ["an unknown version", npy(dict("<f4", "()"), f32Bytes([1]), 4), MalformedInputError, /4\.0/],
  [
    "a header length past the end",
    npy(dict("<f4", "(1,)"), f32Bytes([1])).subarray(0, 40),
    MalformedInputError,
    /runs past the end/,
  ],
  ["an object dtype", npy(dict("|O", "(1,)"), new Uint8Array(8)), MalformedInputError, /object/],
  [
    "a structured dtype",
    npy("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4)),
    MalformedInputError,
    /structured/,
  ],
  ["a complex dtype", npy(dict("<c8", "(1,)"), new Uint8Array(8)), MalformedInputError, /<c8/],
  ["a float16 dtype", npy(dict("<f2", "(1,)"), new Uint8Array(2)), MalformedInputError, /<f2/],
  ["a unicode dtype", npy(dict("<U3", "(1,)"), new Uint8Array(12)), MalformedInputError, /<U3/],
  ["a negative dim", npy(dict("<f4", "(-1,)")), MalformedInputError, /negative/],
  ["a non-integer dim", npy(dict("<f4", "(2.5,)")), MalformedInputError, /non-integer/],
  [
    "a dim that is not a tuple",
    npy(dict("<f4", "(3)"), f32Bytes([1, 2, 3])),
    MalformedInputError,
    /tuple/,
  ],
  [
    "a list shape",
    npy(dict("<f4", "[3]"), f32Bytes([1, 2, 3])),
    MalformedInputError,
    /structured|value/,
  ],
  [
    "a missing key",
    npy("{'descr': '<f4', 'shape': (1,), }", f32Bytes([1])),
    MalformedInputError,
    /exactly the keys/,
  ],
  [
    "an extra key",
    npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': True}", f32Bytes([1])),
    MalformedInputError,
    /exactly the keys/,
  ],
  [
    "a repeated key",
    npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", f32Bytes([1])),
    MalformedInputError,
    /repeats/,
  ],
  [
    "Python code in the header",
    npy("{'descr': __import__('os').system('id'), 'fortran_order': False, 'shape': (1,)}"),
    MalformedInputError,
    /unexpected value/,
  ],
  [
    "a string where True/False belongs",
    npy(dict("<f4", "(1,)", "'False'"), f32Bytes([1])),
    MalformedInputError,
    /fortran_order/,
  ],
  [
    "trailing text after the dict",
    npy(dict("<f4", "(1,)") + " junk", f32Bytes([1])),
    MalformedInputError,
    /trailing/,
  ],
  [
    "a non-ASCII header byte",
    npy(dict("<f4", "(1,)") + "\u00e9", f32Bytes([1])),
    MalformedInputError,
    /non-ASCII/,
  ],
  [
    "a rank above 64",
    npy(dict("|u1", `(${"1, ".repeat(65)})`), new Uint8Array(1)),
    MalformedInputError,
    /64/,
  ],
  [
    "data shorter than the shape (a size lie)",
    npy(dict("<f4", "(4,)"), f32Bytes([1, 2, 3])),
    MalformedInputError,
    /needs 16 data bytes but the file holds 12 \(truncated\)/,
  ],
  [
    "data longer than the shape (a size lie)",
    npy(dict("<f4", "(2,)"), f32Bytes([1, 2, 3])),
    MalformedInputError,
    /trailing bytes/,
  ],
  [
    "an element count that overflows",
    npy(dict("<f4", "(4294967296, 4294967296)")),
    LimitExceededError,
    /too many elements/,
  ],
  [
    "a dimension beyond 2^53",
    npy(dict("<f4", "(99999999999999999999,)")),
    LimitExceededError,
    /too large/,
  ],
];

for (const [what, bytes, cls, pattern] of HOSTILE) {
  Deno.test(`parseNpy() refuses ${what} with ${cls.name}`, () => {
    throwsHttp(() => parseNpy(bytes), cls, pattern);
  });
}

Deno.test("parseNpy() enforces maxBytes and maxElements before copying any data", () => {
  const file = encodeNpy({ dtype: "float32", shape: [10, 10], data: new Float32Array(100) });
  throwsHttp(() => parseNpy(file, { maxBytes: file.length - 1 }), LimitExceededError, /bytes/);
  throwsHttp(
    () => parseNpy(file, { maxElements: 99 }),
    LimitExceededError,
    /100 elements; at most 99/,
  );
  // A shape lie far beyond the limit is a 413, not a 400: the limit is checked first.
  throwsHttp(
    () => parseNpy(npy(dict("<f4", "(100000, 100000)")), { maxElements: 1e6 }),
    LimitExceededError,
    /at most 1000000/,
  );
  assert.equal(parseNpy(file, { maxBytes: file.length, maxElements: 100 }).data.length, 100);
});

const arbDtype = fc.constantFrom(...DTYPES);
const arbShape = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 });

Deno.test("parseNpy(encodeNpy(x)) returns x bit for bit for random dtypes and shapes", () => {
  fc.assert(
    fc.property(arbDtype, arbShape, fc.infiniteStream(fc.integer({ min: 0, max: 255 })), (
      dtype,
      shape,
      bytes,
    ) => {
      const count = shape.reduce((a, b) => a * b, 1);
      const raw = new Uint8Array(count * ITEMSIZE[dtype]);
      const it = bytes[Symbol.iterator]();
      for (let i = 0; i < raw.length; i++) raw[i] = it.next().value! & (dtype === "bool" ? 1 : 255);
      // Arbitrary bit patterns (NaN payloads, -0, extremes) must survive unchanged.
      const data = parseNpy(npy(dict("|u1", `(${raw.length},)`), raw)).data;
      const typed = reinterpret(dtype, data as Uint8Array);
      const back = parseNpy(encodeNpy({ dtype, shape, data: typed }));
      assert.equal(back.dtype, dtype);
      assert.deepEqual(back.shape, shape);
      assert.deepEqual(bytesOf(back.data), raw);
    }),
    { numRuns: 300, seed: 1125 },
  );
});

function reinterpret(dtype: NpyDtype, raw: Uint8Array): NdArray["data"] {
  const b = raw.buffer;
  switch (dtype) {
    case "uint8":
    case "bool":
      return raw;
    case "int8":
      return new Int8Array(b);
    case "int16":
      return new Int16Array(b);
    case "uint16":
      return new Uint16Array(b);
    case "int32":
      return new Int32Array(b);
    case "uint32":
      return new Uint32Array(b);
    case "int64":
      return new BigInt64Array(b);
    case "uint64":
      return new BigUint64Array(b);
    case "float32":
      return new Float32Array(b);
    case "float64":
      return new Float64Array(b);
  }
}

Deno.test("parseNpy() on randomly mutated files either parses or throws an HttpError", () => {
  const seeds = [
    encodeNpy({ dtype: "float32", shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }),
    encodeNpy({ dtype: "int64", shape: [3], data: [1, 2, 3] }),
    npy(dict(">i2", "(1, 2)"), new Uint8Array(4), 2),
  ];
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.nat(255) }),
    // Header-significant characters reach deeper into the dict parser than random bytes do.
    fc.record({
      kind: fc.constant("set" as const),
      at: fc.nat(80),
      value: fc.constantFrom(
        ..."'\"(),:{}[] 0123456789-.LTF<>|=".split("").map((c) => c.charCodeAt(0)),
      ),
    }),
    fc.record({ kind: fc.constant("cut" as const), at: fc.nat(), value: fc.constant(0) }),
    fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.nat(255) }),
  );
  fc.assert(
    fc.property(
      fc.nat(seeds.length - 1),
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
      (seed, mutations) => {
        let bytes = seeds[seed].slice();
        for (const m of mutations) {
          const at = m.at % (bytes.length + 1);
          if (m.kind === "set" && at < bytes.length) bytes[at] = m.value;
          else if (m.kind === "cut") bytes = bytes.slice(0, at);
          else bytes = new Uint8Array([...bytes.subarray(0, at), m.value, ...bytes.subarray(at)]);
        }
        try {
          const arr = parseNpy(bytes, { maxElements: 1e6 });
          assert.equal(arr.data.length, arr.shape.reduce((a, b) => a * b, 1));
        } catch (e) {
          if (!(e instanceof HttpError)) throw e;
        }
      },
    ),
    { numRuns: 500, seed: 1125 },
  );
});

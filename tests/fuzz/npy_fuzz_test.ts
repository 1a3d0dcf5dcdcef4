import assert from "node:assert/strict";
import fc from "fast-check";
import { fixtureBytes } from "../_helpers.ts";
import { imagesFromNpy } from "../../src/io/images.ts";
import { encodeNpy, type NdArray, type NpyDtype, parseNpy } from "../../src/io/npy.ts";
import { byteOps, concat, mutateBytes, outcome, Outcomes, params } from "./_fuzz.ts";

const DTYPES: NpyDtype[] = [
  "uint8",
  "bool",
  "int8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "float32",
  "float64",
];

/** What a parsed array must look like whatever the input was. */
function checkArray(a: NdArray): void {
  assert.ok(DTYPES.includes(a.dtype), a.dtype);
  assert.ok(a.shape.length <= 64);
  let count = 1;
  for (const d of a.shape) {
    assert.ok(Number.isSafeInteger(d) && d >= 0, `dim ${d}`);
    count *= d;
  }
  assert.equal(a.data.length, count);
}

/** Valid files to start mutating from: the fixtures and one of each dtype, in each version. */
function seeds(): Uint8Array[] {
  const out = [fixtureBytes("x.npy"), fixtureBytes("y.npy")];
  for (const dtype of DTYPES) {
    const data = dtype === "int64"
      ? BigInt64Array.from([1n, -2n, 3n, 4n, 5n, 6n])
      : Array.from({ length: 6 }, (_, i) => dtype === "bool" ? i % 2 : i);
    out.push(encodeNpy({ dtype, shape: [2, 3], data }));
  }
  // Version 2.0 and 3.0 headers, and a big-endian descr, written by hand.
  out.push(handWritten(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 16));
  out.push(handWritten(3, "{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }", 12));
  out.push(handWritten(1, "{'descr': '|u1', 'fortran_order': True, 'shape': (1, 4, 1), }", 4));
  return out;
}

function handWritten(major: 1 | 2 | 3, dict: string, dataBytes: number): Uint8Array {
  const lenBytes = major === 1 ? 2 : 4;
  const pre = 8 + lenBytes;
  const pad = (64 - ((pre + dict.length + 1) % 64)) % 64;
  const header = new TextEncoder().encode(dict + " ".repeat(pad) + "\n");
  const head = new Uint8Array(pre);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(head.buffer);
  if (major === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  const data = Uint8Array.from({ length: dataBytes }, (_, i) => i * 37);
  return concat(head, header, data);
}

const LIMITS = { maxBytes: 1 << 20, maxElements: 1 << 18 };

Deno.test("fuzz: parseNpy() on mutated .npy files returns a consistent array or an HttpError", () => {
  const base = seeds();
  const seen = new Outcomes("parseNpy(mutated)");
  fc.assert(
    fc.property(fc.nat(), byteOps, (which, ops) => {
      const bytes = mutateBytes(base[which % base.length], ops);
      const got = outcome(() => {
        const a = parseNpy(bytes, LIMITS);
        checkArray(a);
        // The route hands the array to the image reader next; it must hold the same line.
        const imgs = outcome(() => {
          const b = imagesFromNpy(a, { maxImages: 1000, maxPixels: 1 << 18 });
          assert.equal(b.data.length, b.shape.reduce((x, y) => x * y, 1));
          for (const v of b.data) assert.ok(v >= 0 && v <= 1, `pixel ${v}`);
        });
        assert.ok(imgs === "ok" || [413, 415, 422].includes(imgs), `images: ${imgs}`);
      });
      assert.ok(got === "ok" || got === 400 || got === 413, `status ${got}`);
      seen.add(got);
    }),
    params(1000),
  );
  seen.report();
});

/** `undefined` four times in five. */
const rare = <T>(a: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });

/** A header dict from a small grammar: right and wrong keys, descrs, flags and shapes. */
const headerText = fc.record({
  descr: fc.oneof(
    fc.constantFrom("<f4", "<f8", "|u1", ">i4", "=i2", "<i8", "|b1", "<U8", "O", "<c8", "<f2", "'"),
    fc.string({ maxLength: 6 }),
  ),
  fortran: fc.oneof(
    fc.constant("False"),
    fc.constantFrom("False", "True", "0", "None", "'False'"),
  ),
  shape: fc.array(
    fc.oneof(
      fc.integer({ min: 0, max: 5 }),
      fc.constantFrom(-1, 2 ** 31, 2 ** 53, 1e20, 99999999999999999999),
    ),
    { maxLength: 6 },
  ),
  shapeText: rare(fc.string({ maxLength: 12 })),
  extraKey: rare(fc.constantFrom("'x': 1", "'descr': '<f4'", "**{}", "'shape': ()")),
  quote: fc.constantFrom("'", '"'),
  major: fc.constantFrom(1, 2, 3, 4),
  /** -1: exactly what descr and shape need, so that some headers parse. */
  dataBytes: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 200 })),
});

function exactBytes(descr: string, shape: number[]): number {
  const size = Number(descr.slice(-1));
  const n = shape.reduce((a, b) => a * b, 1);
  return Number.isInteger(size) && n * size <= 1e5 ? n * size : 0;
}

Deno.test("fuzz: parseNpy() on grammar-built headers never throws anything but an HttpError", () => {
  const seen = new Outcomes("parseNpy(grammar headers)");
  fc.assert(
    fc.property(headerText, (h) => {
      const q = h.quote;
      const shape = h.shapeText ??
        `(${h.shape.join(", ")}${h.shape.length === 1 ? "," : ""})`;
      const dict = `{${q}descr${q}: ${q}${h.descr}${q}, ${q}fortran_order${q}: ${h.fortran}, ` +
        `${q}shape${q}: ${shape}, ${h.extraKey ?? ""}}`;
      const bytes = handWritten(
        (h.major === 4 ? 1 : h.major) as 1 | 2 | 3,
        dict,
        h.dataBytes < 0 ? exactBytes(h.descr, h.shape) : h.dataBytes,
      );
      if (h.major === 4) bytes[6] = 4;
      const got = outcome(() => checkArray(parseNpy(bytes, LIMITS)));
      assert.ok(got === "ok" || got === 400 || got === 413, `status ${got}`);
      seen.add(got);
    }),
    params(1000),
  );
  seen.report();
});

Deno.test("fuzz: parseNpy() on random bytes behind the magic string is an HttpError", () => {
  const magic = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 300 }), (withMagic, tail) => {
      const bytes = withMagic ? concat(magic, tail) : tail;
      const got = outcome(() => checkArray(parseNpy(bytes, LIMITS)));
      assert.ok(got === "ok" || got === 400 || got === 413, `status ${got}`);
    }),
    params(1000),
  );
});

Deno.test("fuzz: encodeNpy() then parseNpy() gives back dtype, shape and every value", () => {
  const arr = fc.constantFrom(...DTYPES).chain((dtype) =>
    fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }).chain((shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const value = dtype === "float32"
        ? fc.float({ noDefaultInfinity: false }).map(Math.fround)
        : dtype === "float64"
        ? fc.double()
        : dtype === "bool"
        ? fc.integer({ min: 0, max: 1 })
        : dtype === "int64"
        ? fc.maxSafeInteger()
        : fc.integer(RANGES[dtype]);
      return fc.record({
        dtype: fc.constant(dtype),
        shape: fc.constant(shape),
        data: fc.array(value, { minLength: n, maxLength: n }),
      });
    })
  );
  fc.assert(
    fc.property(arr, (a) => {
      const back = parseNpy(encodeNpy(a));
      assert.equal(back.dtype, a.dtype);
      assert.deepEqual(back.shape, a.shape);
      const got = Array.from(back.data as ArrayLike<number | bigint>, Number);
      assert.deepEqual(got, a.data.map((v) => (Object.is(v, -0) ? -0 : v)));
    }),
    params(500),
  );
});

const RANGES: Record<string, { min: number; max: number }> = {
  uint8: { min: 0, max: 255 },
  int8: { min: -128, max: 127 },
  int16: { min: -32768, max: 32767 },
  uint16: { min: 0, max: 65535 },
  int32: { min: -(2 ** 31), max: 2 ** 31 - 1 },
  uint32: { min: 0, max: 2 ** 32 - 1 },
};

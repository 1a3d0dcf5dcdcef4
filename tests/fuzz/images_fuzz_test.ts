import assert from "node:assert/strict";
import fc from "fast-check";
import { encode as pngEncode } from "fast-png";
import jpeg from "jpeg-js";
import { imagesFromFiles, imagesFromNpy } from "../../src/io/images.ts";
import type { NdArray } from "../../src/io/npy.ts";
import { byteOps, mutateBytes, outcome, Outcomes, params, withinMs } from "./_fuzz.ts";

const LIMITS = { maxImages: 8, maxPixels: 1 << 16 };

/** A smooth pattern, `c` bytes per pixel, values below `max`. */
function pattern(w: number, h: number, c: number, max = 255): number[] {
  const out: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < c; k++) out.push(Math.round((max * ((x + 2 * y + 5 * k) % 16)) / 15));
    }
  }
  return out;
}

const jpg = (w: number, h: number, q: number) =>
  new Uint8Array(
    jpeg.encode({ width: w, height: h, data: Uint8Array.from(pattern(w, h, 4)) }, q)
      .data,
  );

/** One file of every kind the decoder handles: PNG colour types, depths, palettes, Adam7; JPEG. */
const SEEDS: Uint8Array[] = [
  pngEncode({ width: 6, height: 5, data: Uint8Array.from(pattern(6, 5, 3)), channels: 3 }),
  pngEncode({ width: 5, height: 4, data: Uint8Array.from(pattern(5, 4, 4)) }),
  pngEncode({ width: 7, height: 3, data: Uint8Array.from(pattern(7, 3, 1)), channels: 1 }),
  pngEncode({ width: 4, height: 4, data: Uint8Array.from(pattern(4, 4, 2)), channels: 2 }),
  pngEncode({
    width: 4,
    height: 3,
    data: Uint16Array.from(pattern(4, 3, 1, 65535)),
    channels: 1,
    depth: 16,
  }),
  pngEncode({
    width: 5,
    height: 2,
    data: Uint8Array.from([0, 1, 2, 1, 0, 2, 2, 1, 0, 1]),
    channels: 1,
    depth: 8,
    palette: [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
  }),
  pngEncode({
    width: 9,
    height: 1,
    data: Uint8Array.from([0b10100110, 0b10000000]),
    channels: 1,
    depth: 1,
  }),
  pngEncode({ width: 9, height: 7, data: Uint8Array.from(pattern(9, 7, 3)), channels: 3 }, {
    interlace: "Adam7",
  }),
  jpg(8, 8, 90),
  jpg(17, 9, 50),
  jpg(16, 16, 10),
];

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/**
 * Rewrites every PNG chunk's CRC so that mutations get past the checksum and reach the chunk
 * parsers and the decoder, where the interesting bugs live.
 */
function fixPngCrcs(b: Uint8Array): Uint8Array {
  if (b.length < 8 || b[0] !== 0x89 || b[1] !== 0x50) return b;
  const out = b.slice();
  const view = new DataView(out.buffer);
  let at = 8;
  while (at + 12 <= out.length) {
    const len = view.getUint32(at);
    if (at + 12 + len > out.length) break;
    let crc = 0xffffffff;
    for (let i = at + 4; i < at + 8 + len; i++) {
      crc = CRC_TABLE[(crc ^ out[i]) & 0xff] ^ (crc >>> 8);
    }
    view.setUint32(at + 8 + len, (crc ^ 0xffffffff) >>> 0);
    at += 12 + len;
  }
  return out;
}

function checkBatch(b: { shape: number[]; data: Float32Array }, channels?: 1 | 3): void {
  assert.equal(b.shape.length, 4);
  assert.equal(b.data.length, b.shape.reduce((x, y) => x * y, 1));
  assert.ok(b.data.length <= LIMITS.maxPixels);
  if (channels !== undefined) assert.equal(b.shape[3], channels);
  for (const v of b.data) assert.ok(v >= 0 && v <= 1, `pixel ${v}`);
}

Deno.test("fuzz: imagesFromFiles() on mutated PNGs and JPEGs decodes in bounds or throws an HttpError", async () => {
  const seen = new Outcomes("imagesFromFiles(mutated)");
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.tuple(fc.nat(), fc.oneof(byteOps, fc.constant([])), fc.boolean()),
        { minLength: 1, maxLength: 3 },
      ),
      fc.constantFrom(undefined, 1 as const, 3 as const),
      async (files, channels) => {
        const inputs = files.map(([which, ops, fixCrc], i) => {
          const m = mutateBytes(SEEDS[which % SEEDS.length], ops);
          return { name: `f${i}`, bytes: fixCrc ? fixPngCrcs(m) : m };
        });
        const got = await withinMs(
          2000,
          "decoding",
          () => outcome(() => checkBatch(imagesFromFiles(inputs, LIMITS, channels), channels)),
        );
        assert.ok(got === "ok" || [400, 413, 415, 422].includes(got), `status ${got}`);
        seen.add(got);
      },
    ),
    params(600),
  );
  seen.report();
});

Deno.test("fuzz: imagesFromNpy() on arbitrary arrays keeps every pixel in [0,1] or throws an HttpError", () => {
  const arr = fc.record({
    dtype: fc.constantFrom("uint8", "float32", "float64", "int32", "bool", "int64" as const),
    shape: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 5 }),
    values: fc.array(
      fc.oneof(
        { weight: 20, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) },
        { weight: 1, arbitrary: fc.double() },
        { weight: 1, arbitrary: fc.constantFrom(0, 1, 255, -1, -0, NaN, Infinity, 1 + 1e-7) },
      ),
      { maxLength: 64 },
    ),
  });
  const seen = new Outcomes("imagesFromNpy(arbitrary)");
  fc.assert(
    fc.property(arr, ({ dtype, shape, values }) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const v = Array.from({ length: n }, (_, i) => values.length ? values[i % values.length] : 0);
      const data = dtype === "uint8" || dtype === "bool"
        ? Uint8Array.from(v, (x) => (Number.isFinite(x) ? Math.abs(Math.trunc(x)) % 256 : 0))
        : dtype === "float32"
        ? Float32Array.from(v)
        : dtype === "float64"
        ? Float64Array.from(v)
        : dtype === "int32"
        ? Int32Array.from(v, (x) => (Number.isFinite(x) ? Math.trunc(x) % 1000 : 0))
        : BigInt64Array.from(v, (x) => BigInt(Number.isFinite(x) ? Math.trunc(x) % 1000 : 0));
      const a = { dtype, shape, data } as NdArray;
      const got = outcome(() => checkBatch(imagesFromNpy(a, LIMITS)));
      assert.ok(got === "ok" || [413, 422].includes(got), `status ${got}`);
      seen.add(got);
    }),
    params(1000),
  );
  seen.report();
});

import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import fc from "fast-check";
import { encode as pngEncode } from "fast-png";
import jpeg from "jpeg-js";
import {
  HttpError,
  LimitExceededError,
  MalformedInputError,
  ShapeMismatchError,
  UnprocessableError,
  UnsupportedMediaTypeError,
} from "../../src/errors.ts";
import { encodePng, imagesFromFiles, imagesFromNpy } from "../../src/io/images.ts";
import type { NdArray } from "../../src/io/npy.ts";

const LIMITS = { maxImages: 16, maxPixels: 1_000_000 };

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => HttpError;

function throwsHttp(fn: () => unknown, cls: ErrorClass, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

function file(name: string, bytes: Uint8Array) {
  return { name, bytes };
}

/** A smooth test pattern (JPEG-friendly), bytes per pixel `c`. */
function pattern(w: number, h: number, c: number, max = 255): number[] {
  const out: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < c; k++) out.push(Math.round((max * ((x + y + 7 * k) % 16)) / 15));
    }
  }
  return out;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  let crc = 0xffffffff;
  for (const b of out.subarray(4, 8 + data.length)) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  view.setUint32(8 + data.length, (crc ^ 0xffffffff) >>> 0);
  return out;
}

/** A PNG assembled by hand, so the IHDR can claim anything; `extra` chunks go before IDAT. */
function handPng(
  width: number,
  height: number,
  colorType: number,
  idat: Uint8Array,
  extra: Uint8Array[] = [],
): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = colorType;
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array()),
  ];
  return new Uint8Array(parts.flatMap((p) => [...p]));
}

function npyArr(dtype: NdArray["dtype"], shape: number[], values: number[]): NdArray {
  const data = dtype === "uint8"
    ? Uint8Array.from(values)
    : dtype === "float64"
    ? Float64Array.from(values)
    : dtype === "int32"
    ? Int32Array.from(values)
    : Float32Array.from(values);
  return { dtype, shape, data };
}

Deno.test("imagesFromNpy() divides uint8 by 255 and reads rank 3 as one channel", () => {
  const batch = imagesFromNpy(npyArr("uint8", [2, 1, 2], [0, 255, 51, 102]), LIMITS);
  assert.deepEqual(batch.shape, [2, 1, 2, 1]);
  assert.deepEqual(batch.data, Float32Array.from([0, 1, 0.2, 0.4]));
});

Deno.test("imagesFromNpy() takes float32 and float64 in [0,1] as they are", () => {
  const f32 = npyArr("float32", [1, 1, 1, 3], [0, 0.5, 1]);
  const batch = imagesFromNpy(f32, LIMITS);
  assert.deepEqual(batch.shape, [1, 1, 1, 3]);
  assert.equal(batch.data, f32.data, "float32 is reused, not copied");
  const f64 = imagesFromNpy(npyArr("float64", [1, 1, 1, 2], [0.25, 1]), LIMITS);
  assert.deepEqual(f64.data, Float32Array.from([0.25, 1]));
});

Deno.test("imagesFromNpy() names the first float value outside [0,1], NaN or Inf", () => {
  for (const bad of [1.5, -0.01, NaN, Infinity]) {
    const arr = npyArr("float32", [2, 1, 1, 2], [0, 0.5, 1, bad]);
    throwsHttp(() => imagesFromNpy(arr, LIMITS), UnprocessableError, /at flat index 3 \(image 1\)/);
  }
  assert.throws(
    () => imagesFromNpy(npyArr("float64", [1, 2, 2, 1], [0, 0, 7, 9]), LIMITS),
    (e: HttpError) => {
      assert.deepEqual(e.details, { index: 2, position: [0, 1, 0, 0], value: "7" });
      return true;
    },
  );
});

Deno.test("imagesFromNpy() refuses other dtypes, ranks, empty dims and oversized batches", () => {
  throwsHttp(
    () => imagesFromNpy(npyArr("int32", [1, 1, 1, 1], [0]), LIMITS),
    UnprocessableError,
    /uint8 \(0-255\) or float32\/float64 \(0-1\); got int32/,
  );
  throwsHttp(
    () => imagesFromNpy(npyArr("uint8", [4, 4], new Array(16).fill(0)), LIMITS),
    ShapeMismatchError,
    /rank 4/,
  );
  throwsHttp(
    () => imagesFromNpy(npyArr("uint8", [0, 4, 4, 1], []), LIMITS),
    ShapeMismatchError,
    /zero dimension/,
  );
  throwsHttp(
    () => imagesFromNpy(npyArr("uint8", [17, 1, 1, 1], new Array(17).fill(0)), LIMITS),
    LimitExceededError,
    /17 images.*at most 16/,
  );
  throwsHttp(
    () =>
      imagesFromNpy(npyArr("uint8", [2, 10, 10, 3], new Array(600).fill(0)), {
        maxImages: 16,
        maxPixels: 599,
      }),
    LimitExceededError,
    /600 values; at most 599/,
  );
});

Deno.test("encodePng() then imagesFromFiles() round-trips RGB and grey within quantisation", () => {
  for (const c of [1, 3] as const) {
    const data = Float32Array.from(pattern(5, 4, c, 1000), (v) => v / 1000);
    const png = encodePng(4, 5, c, data);
    const batch = imagesFromFiles([file("x.bin", png)], LIMITS);
    assert.deepEqual(batch.shape, [1, 4, 5, c]);
    for (let i = 0; i < data.length; i++) {
      assert.ok(Math.abs(batch.data[i] - data[i]) <= 0.5 / 255 + 1e-6, `value ${i}`);
    }
  }
});

Deno.test("encodePng() clamps values, maps NaN to 0 and checks its sizes", () => {
  const png = encodePng(1, 4, 1, Float32Array.from([-1, 2, NaN, 0.5]));
  const back = imagesFromFiles([file("a.png", png)], LIMITS).data;
  assert.deepEqual(Array.from(back, (v) => Math.round(v * 255)), [0, 255, 0, 128]);
  throwsHttp(() => encodePng(2, 2, 3, new Float32Array(11)), ShapeMismatchError, /needs 12/);
});

Deno.test("imagesFromFiles() refuses a PNG whose IHDR claims 100000×100000 before decoding", () => {
  const bomb = handPng(100_000, 100_000, 2, deflateSync(new Uint8Array(16)));
  // The IDAT holds 16 zero bytes: only the IHDR can have told it apart from a valid image.
  throwsHttp(
    () => imagesFromFiles([file("bomb.png", bomb)], LIMITS),
    LimitExceededError,
    /'bomb\.png' is 100000×100000×3; at most 1000000/,
  );
});

Deno.test("imagesFromFiles() refuses IDAT data that inflates past what a small IHDR implies", () => {
  // 1×1 grey: 2 raw bytes. The stream expands to 16 MiB; the cap stops inflating near 2.
  const stream = deflateSync(new Uint8Array(16 << 20), { level: 9 });
  const bomb = handPng(1, 1, 0, stream);
  throwsHttp(
    () => imagesFromFiles([file("zip.png", bomb)], LIMITS),
    MalformedInputError,
    /inflates to more than the 2 bytes its IHDR implies/,
  );
});

Deno.test("imagesFromFiles() tolerates a little excess image data, as libpng does, but not short data", () => {
  const ok = handPng(2, 1, 0, deflateSync(Uint8Array.from([0, 51, 255, 0, 0, 0])));
  assert.deepEqual(imagesFromFiles([file("x.png", ok)], LIMITS).data, Float32Array.from([0.2, 1]));
  const short = handPng(2, 1, 0, deflateSync(Uint8Array.from([0, 51])));
  throwsHttp(
    () => imagesFromFiles([file("s.png", short)], LIMITS),
    MalformedInputError,
    /inflates to 2 bytes; its IHDR implies 3/,
  );
});

Deno.test("imagesFromFiles() never inflates ancillary chunks such as an iCCP profile bomb", () => {
  // fast-png inflates iCCP without a cap; this "profile" expands toward 16 MiB and is cut short,
  // so fast-png would also throw on it. Decoding cleanly shows the chunk never reached it.
  const profile = deflateSync(new Uint8Array(16 << 20), { level: 9 }).subarray(0, -8);
  const iccp = chunk("iCCP", new Uint8Array([0x78, 0, 0, ...profile]));
  const text = chunk("tEXt", new TextEncoder().encode("Comment\0hello"));
  const png = handPng(2, 1, 0, deflateSync(Uint8Array.from([0, 51, 255])), [iccp, text]);
  const batch = imagesFromFiles([file("icc.png", png)], LIMITS);
  assert.deepEqual(batch.data, Float32Array.from([0.2, 1]));
});

Deno.test("imagesFromFiles() refuses truncated and corrupt PNGs with MalformedInputError", () => {
  const png = encodePng(8, 8, 3, new Float32Array(8 * 8 * 3).fill(0.5));
  for (const cut of [8, 20, 33, 40, png.length - 30, png.length - 1]) {
    throwsHttp(
      () => imagesFromFiles([file("cut.png", png.subarray(0, cut))], LIMITS),
      MalformedInputError,
      /PNG 'cut\.png' .*(truncated|IHDR)/,
    );
  }
  const corrupt = png.slice();
  const idat = new TextDecoder("latin1").decode(corrupt).indexOf("IDAT");
  corrupt.fill(0xff, idat + 6, idat + 14); // inside the zlib stream
  throwsHttp(
    () => imagesFromFiles([file("bad.png", corrupt)], LIMITS),
    MalformedInputError,
    /PNG 'bad\.png'/,
  );
});

Deno.test("imagesFromFiles() decodes a JPEG made by jpeg-js close to its source", () => {
  const [w, h] = [32, 24];
  const rgb = pattern(w, h, 3);
  const rgba = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) rgba.set([...rgb.slice(3 * p, 3 * p + 3), 255], 4 * p);
  const jpg = new Uint8Array(jpeg.encode({ width: w, height: h, data: rgba }, 95).data);
  const batch = imagesFromFiles([file("photo.png", jpg)], LIMITS);
  assert.deepEqual(batch.shape, [1, h, w, 3]);
  let err = 0;
  for (let i = 0; i < rgb.length; i++) err += Math.abs(batch.data[i] - rgb[i] / 255);
  assert.ok(err / rgb.length < 0.03, `mean abs error ${err / rgb.length}`);
  const grey = imagesFromFiles([file("photo.jpg", jpg)], LIMITS, 1);
  assert.deepEqual(grey.shape, [1, h, w, 1]);
});

Deno.test("imagesFromFiles() refuses a JPEG whose frame header claims 60000×60000", () => {
  const jpg = new Uint8Array(jpeg.encode({ width: 8, height: 8, data: new Uint8Array(256) }).data);
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
  const v = new DataView(jpg.buffer);
  v.setUint16(sof + 5, 60000);
  v.setUint16(sof + 7, 60000);
  throwsHttp(
    () => imagesFromFiles([file("big.jpg", jpg)], LIMITS),
    LimitExceededError,
    /60000×60000×3/,
  );
  jpg[sof + 1] = 0xc3; // lossless coding, which jpeg-js lacks
  throwsHttp(
    () => imagesFromFiles([file("big.jpg", jpg)], LIMITS),
    UnsupportedMediaTypeError,
    /SOF 0xc3/,
  );
});

Deno.test("imagesFromFiles() refuses truncated and corrupt JPEGs with MalformedInputError", () => {
  const jpg = new Uint8Array(
    jpeg.encode({ width: 16, height: 16, data: Uint8Array.from(pattern(16, 16, 4)) }).data,
  );
  for (const cut of [3, 30, 200, jpg.length - 10]) {
    throwsHttp(
      () => imagesFromFiles([file("cut.jpg", jpg.subarray(0, cut))], LIMITS),
      MalformedInputError,
      /JPEG 'cut\.jpg'/,
    );
  }
});

Deno.test("imagesFromFiles() scales 16-bit PNG samples by 65535", () => {
  const data = Uint16Array.from([0, 65535, 32768, 1000]);
  const png = pngEncode({ width: 2, height: 2, data, channels: 1, depth: 16 });
  const batch = imagesFromFiles([file("deep.png", png)], LIMITS);
  assert.deepEqual(batch.shape, [1, 2, 2, 1]);
  assert.deepEqual(batch.data, Float32Array.from(data, (v) => v / 65535));
});

Deno.test("imagesFromFiles() drops alpha: grey+alpha gives 1 channel, RGBA gives 3", () => {
  const ga = pngEncode({
    width: 2,
    height: 1,
    data: Uint8Array.from([51, 0, 255, 9]),
    channels: 2,
  });
  const g = imagesFromFiles([file("ga.png", ga)], LIMITS);
  assert.deepEqual(g.shape, [1, 1, 2, 1]);
  assert.deepEqual(g.data, Float32Array.from([0.2, 1]));
  const rgba = Uint8Array.from([255, 0, 0, 0, 0, 0, 255, 128]);
  const c = imagesFromFiles(
    [file("c.png", pngEncode({ width: 2, height: 1, data: rgba }))],
    LIMITS,
  );
  assert.deepEqual(c.shape, [1, 1, 2, 3]);
  assert.deepEqual(c.data, Float32Array.from([1, 0, 0, 0, 0, 1]));
});

Deno.test("imagesFromFiles() expands palette PNGs, 8-bit and packed 2-bit", () => {
  const palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255]];
  const idx = Uint8Array.from([0, 1, 2, 2, 1, 0]);
  const p8 = pngEncode({ width: 3, height: 2, data: idx, channels: 1, depth: 8, palette });
  const expected = Float32Array.from([...idx].flatMap((i) => palette[i].map((v) => v / 255)));
  const b8 = imagesFromFiles([file("p8.png", p8)], LIMITS);
  assert.deepEqual(b8.shape, [1, 2, 3, 3]);
  assert.deepEqual(b8.data, expected);
  // 2-bit rows are byte-padded: 3 indices per row = 6 bits + 2 padding bits.
  const packed = Uint8Array.from([0b00011000, 0b10010000]);
  const p2 = pngEncode({ width: 3, height: 2, data: packed, channels: 1, depth: 2, palette });
  assert.deepEqual(imagesFromFiles([file("p2.png", p2)], LIMITS).data, expected);
  const noPlte = handPng(3, 2, 3, deflateSync(Uint8Array.from([0, 0, 1, 2, 0, 2, 1, 0])));
  throwsHttp(
    () => imagesFromFiles([file("np.png", noPlte)], LIMITS),
    MalformedInputError,
    /palette image without a PLTE chunk/,
  );
  const plte = chunk("PLTE", Uint8Array.from([9, 9, 9]));
  const outOfRange = handPng(3, 2, 3, deflateSync(Uint8Array.from([0, 0, 1, 2, 0, 2, 1, 0])), [
    plte,
  ]);
  throwsHttp(
    () => imagesFromFiles([file("oor.png", outOfRange)], LIMITS),
    MalformedInputError,
    /palette index 1 of 1/,
  );
});

Deno.test("imagesFromFiles() reads 1-bit grey and Adam7-interlaced PNGs", () => {
  const bits = pngEncode({
    width: 3,
    height: 1,
    data: Uint8Array.from([0b10100000]),
    channels: 1,
    depth: 1,
  });
  assert.deepEqual(
    imagesFromFiles([file("b.png", bits)], LIMITS).data,
    Float32Array.from([1, 0, 1]),
  );
  const rgb = Uint8Array.from(pattern(9, 7, 3));
  const plain = pngEncode({ width: 9, height: 7, data: rgb, channels: 3 });
  const adam7 = pngEncode({ width: 9, height: 7, data: rgb, channels: 3 }, { interlace: "Adam7" });
  assert.deepEqual(
    imagesFromFiles([file("i.png", adam7)], LIMITS).data,
    imagesFromFiles([file("p.png", plain)], LIMITS).data,
  );
});

Deno.test("imagesFromFiles() converts channels on request: BT.601 luminance, grey replicated", () => {
  const rgb = pngEncode({ width: 1, height: 1, data: Uint8Array.from([255, 0, 0]), channels: 3 });
  const y = imagesFromFiles([file("r.png", rgb)], LIMITS, 1);
  assert.deepEqual(y.shape, [1, 1, 1, 1]);
  assert.ok(Math.abs(y.data[0] - 0.299) < 1e-6);
  const grey = pngEncode({ width: 1, height: 1, data: Uint8Array.from([51]), channels: 1 });
  const both = imagesFromFiles([file("g.png", grey), file("r.png", rgb)], LIMITS);
  assert.deepEqual(both.shape, [2, 1, 1, 1], "the first image sets the default channel count");
  const three = imagesFromFiles([file("g.png", grey), file("r.png", rgb)], LIMITS, 3);
  assert.deepEqual(three.data, Float32Array.from([0.2, 0.2, 0.2, 1, 0, 0]));
});

Deno.test("imagesFromFiles() batches same-size files and refuses mixed sizes by name", () => {
  const a = encodePng(4, 4, 3, new Float32Array(48).fill(0.2));
  const b = encodePng(4, 4, 3, new Float32Array(48).fill(0.8));
  const batch = imagesFromFiles([file("a.png", a), file("b.png", b)], LIMITS);
  assert.deepEqual(batch.shape, [2, 4, 4, 3]);
  assert.ok(Math.abs(batch.data[48] - 0.8) < 0.003);
  const c = encodePng(4, 5, 3, new Float32Array(60));
  throwsHttp(
    () => imagesFromFiles([file("a.png", a), file("c.png", c)], LIMITS),
    ShapeMismatchError,
    /'a\.png' is 4×4 but 'c\.png' is 5×4/,
  );
});

Deno.test("imagesFromFiles() sniffs magic bytes and refuses anything but PNG and JPEG", () => {
  const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00");
  throwsHttp(
    () => imagesFromFiles([file("cat.png", gif)], LIMITS),
    UnsupportedMediaTypeError,
    /'cat\.png' is neither PNG nor JPEG/,
  );
  throwsHttp(
    () => imagesFromFiles([file("e.png", new Uint8Array())], LIMITS),
    UnsupportedMediaTypeError,
    /e\.png/,
  );
});

Deno.test("imagesFromFiles() enforces the image count and the batch size", () => {
  throwsHttp(() => imagesFromFiles([], LIMITS), UnprocessableError, /at least one/);
  const one = encodePng(10, 10, 1, new Float32Array(100));
  const many = new Array(17).fill(0).map((_, i) => file(`${i}.png`, one));
  throwsHttp(() => imagesFromFiles(many, LIMITS), LimitExceededError, /17 images/);
  throwsHttp(
    () => imagesFromFiles(many.slice(0, 3), { maxImages: 16, maxPixels: 299 }),
    LimitExceededError,
    /holds 300 values; at most 299/,
  );
  throwsHttp(
    () => imagesFromFiles(many.slice(0, 1), { maxImages: 16, maxPixels: 299 }, 3),
    LimitExceededError,
    /10×10×3/,
  );
});

Deno.test("imagesFromFiles() on randomly mutated PNGs and JPEGs either decodes or throws an HttpError", () => {
  const seeds = [
    encodePng(6, 5, 3, Float32Array.from(pattern(5, 6, 3), (v) => v / 255)),
    pngEncode({ width: 5, height: 3, data: Uint8Array.from(pattern(5, 3, 2)), channels: 2 }, {
      interlace: "Adam7",
    }),
    new Uint8Array(
      jpeg.encode({ width: 8, height: 8, data: Uint8Array.from(pattern(8, 8, 4)) }).data,
    ),
  ];
  fc.assert(
    fc.property(
      fc.nat(seeds.length - 1),
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }),
      fc.option(fc.nat()),
      (seed, sets, cut) => {
        let bytes = seeds[seed].slice();
        for (const [at, v] of sets) bytes[at % bytes.length] = v;
        if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1));
        try {
          const batch = imagesFromFiles([file("m", bytes)], LIMITS);
          assert.ok(batch.data.every((v) => v >= 0 && v <= 1));
        } catch (e) {
          if (!(e instanceof HttpError)) throw e;
        }
      },
    ),
    { numRuns: 300, seed: 1125 },
  );
});

/** A PNG whose IHDR claims `width`×`height` at any colour type and bit depth, with tiny data. */
function claimingPng(width: number, height: number, colorType: number, depth: number): Uint8Array {
  const png = handPng(width, height, colorType, deflateSync(new Uint8Array(64)));
  png[24] = depth;
  // Re-seal the IHDR's CRC after the depth edit.
  let crc = 0xffffffff;
  for (const b of png.subarray(12, 29)) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  new DataView(png.buffer).setUint32(29, (crc ^ 0xffffffff) >>> 0);
  return png;
}

Deno.test("imagesFromFiles() budgets a PNG by the file's own channels and bit depth, not the model's", () => {
  // 500×500 16-bit RGBA decodes to 2,000,000 bytes: over a 1,000,000 budget even when the model
  // wants one grey channel (500×500×1 = 250,000 values would pass).
  const bomb = claimingPng(500, 500, 6, 16);
  const t0 = performance.now();
  throwsHttp(
    () => imagesFromFiles([file("rgba16.png", bomb)], LIMITS, 1),
    LimitExceededError,
    /'rgba16\.png' is 500×500 with 4 channel\(s\) of 16 bits in the file, 2000000 bytes/,
  );
  assert.ok(performance.now() - t0 < 100, "refused from the header, before inflating");
  // 8-bit grey+alpha of the same size is 500,000 bytes: within budget, so the data is what fails.
  throwsHttp(
    () => imagesFromFiles([file("ga8.png", claimingPng(500, 500, 4, 8))], LIMITS, 1),
    MalformedInputError,
    /inflates to/,
  );
  // A real, small 16-bit RGBA file still decodes.
  const data = Uint16Array.from(pattern(4, 4, 4, 65535));
  const png = pngEncode({ width: 4, height: 4, data, channels: 4, depth: 16 });
  assert.deepEqual(imagesFromFiles([file("ok.png", png)], LIMITS, 1).shape, [1, 4, 4, 1]);
});

/** A jpeg-js baseline JPEG with its SOF0 marker and sample precision rewritten. */
function jpegWith(marker: number, precision = 8): Uint8Array {
  const jpg = new Uint8Array(jpeg.encode({ width: 8, height: 8, data: new Uint8Array(256) }).data);
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
  jpg[sof + 1] = marker;
  jpg[sof + 4] = precision;
  return jpg;
}

Deno.test("imagesFromFiles() refuses 12-bit and arithmetic-coded JPEGs with 415 before decoding", () => {
  throwsHttp(
    () => imagesFromFiles([file("deep.jpg", jpegWith(0xc1, 12))], LIMITS),
    UnsupportedMediaTypeError,
    /'deep\.jpg' has 12-bit samples/,
  );
  throwsHttp(
    () => imagesFromFiles([file("deep0.jpg", jpegWith(0xc0, 12))], LIMITS),
    UnsupportedMediaTypeError,
    /12-bit/,
  );
  for (const m of [0xc3, 0xc5, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]) {
    throwsHttp(
      () => imagesFromFiles([file("arith.jpg", jpegWith(m))], LIMITS),
      UnsupportedMediaTypeError,
      new RegExp(`SOF 0x${m.toString(16)}`),
    );
  }
  // A DAC segment (arithmetic-coding conditioning) before the frame header.
  const jpg = jpegWith(0xc0);
  const dac = Uint8Array.from([0xff, 0xcc, 0x00, 0x04, 0x00, 0x10]);
  const withDac = new Uint8Array([...jpg.subarray(0, 2), ...dac, ...jpg.subarray(2)]);
  throwsHttp(
    () => imagesFromFiles([file("dac.jpg", withDac)], LIMITS),
    UnsupportedMediaTypeError,
    /arithmetic-coded/,
  );
  // The unedited file still decodes.
  assert.deepEqual(imagesFromFiles([file("ok.jpg", jpegWith(0xc0))], LIMITS).shape, [1, 8, 8, 3]);
});

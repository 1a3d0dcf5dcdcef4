/**
 * Image batches from the wire: a `.npy` array or PNG/JPEG files, always out as NHWC float32 in
 * [0,1] (the pixel space every attack, detector and metric works in).
 *
 * Hostile files are the normal case here. Dimensions are read from the PNG IHDR or the JPEG frame
 * header and checked against the limits before any pixel buffer is allocated, and a PNG's
 * compressed stream is inflated under a byte cap derived from IHDR, so a decompression bomb costs
 * a few milliseconds and a 413 or 400, never the memory it asks for.
 *
 * @module
 */
import { decode as decodePngRaw, encode as encodePngRaw } from "fast-png";
import jpeg from "jpeg-js";
import { inflateSync } from "node:zlib";
import {
  ensure,
  HttpError,
  LimitExceededError,
  MalformedInputError,
  ShapeMismatchError,
  UnprocessableError,
  UnsupportedMediaTypeError,
} from "../errors.ts";
import type { NdArray } from "./npy.ts";
import { concatBytes } from "./bytes.ts";

/**
 * A batch of images `[N, H, W, C]`, C order, every value in [0,1]: the one batch type of the
 * parsers, attacks, detectors, metrics, triggers and the round. {@link checkBatchFits} is its one
 * check against a model.
 */
export interface ImageBatch {
  shape: [number, number, number, number];
  data: Float32Array;
}

/** Caps on a batch; both are checked before pixels are decoded or copied. */
export interface ImageLimits {
  /** Largest accepted N. */
  maxImages: number;
  /** Largest accepted total N*H*W*C (after channel conversion). */
  maxPixels: number;
}

/** One uploaded image file; only the bytes decide its format. */
export interface ImageFile {
  name: string;
  bytes: Uint8Array;
}

/**
 * Images from a parsed `.npy`: `uint8` (0-255, divided by 255) or `float32`/`float64` already in
 * [0,1]; rank 4 NHWC, or rank 3 NHW taken as C=1. A `float32` input's buffer is reused, not
 * copied (the batch may alias `arr.data`).
 *
 * @throws {ShapeMismatchError} rank other than 3 or 4, or a zero dimension.
 * @throws {LimitExceededError} more than `limits.maxImages` images or `limits.maxPixels` values.
 * @throws {UnprocessableError} another dtype, or a float value outside [0,1], NaN or infinite
 *   (the message names the first offending flat index and its NHWC position).
 */
export function imagesFromNpy(arr: NdArray, limits: ImageLimits): ImageBatch {
  const s = arr.shape;
  ensure(
    s.length === 3 || s.length === 4,
    () =>
      new ShapeMismatchError(
        `images .npy must be rank 4 (N, H, W, C) or rank 3 (N, H, W); got shape (${s.join(", ")})`,
        { shape: s },
      ),
  );
  const shape: [number, number, number, number] = [s[0], s[1], s[2], s.length === 4 ? s[3] : 1];
  ensure(
    shape.every((d) => d > 0),
    () =>
      new ShapeMismatchError(
        `images .npy must have no zero dimension; got shape (${s.join(", ")})`,
        { shape: s },
      ),
  );
  checkLimits(shape, limits);
  const fail = () =>
    new UnprocessableError(
      `images .npy must be uint8 (0-255) or float32/float64 (0-1); got ${arr.dtype}`,
      { dtype: arr.dtype },
    );
  if (arr.dtype === "uint8") {
    const src = arr.data as Uint8Array;
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = src[i] / 255;
    return { shape, data: out };
  }
  if (arr.dtype !== "float32" && arr.dtype !== "float64") throw fail();
  const src = arr.data as Float32Array | Float64Array;
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    // Written so that NaN fails too.
    if (!(v >= 0 && v <= 1)) {
      throw new UnprocessableError(
        `${arr.dtype} images must lie in [0,1] (divide uint8 pixels by 255); value ${v} at ` +
          `flat index ${i} (image ${Math.floor(i / (src.length / shape[0]))}) is outside`,
        { index: i, position: unravel(i, shape), value: String(v) },
      );
    }
  }
  return { shape, data: src instanceof Float32Array ? src : Float32Array.from(src) };
}

/**
 * Decodes one or more PNG or JPEG files into a batch. The format is sniffed from the magic bytes;
 * names and content types are not trusted. Every file must share H and W. Channels are converted to
 * `channels` (1: luminance Y = 0.299 R + 0.587 G + 0.114 B, ITU-R BT.601 as in PIL's "L" mode;
 * 3: RGB, grey replicated); alpha is dropped, not composited. Default `channels`: the first
 * image's, alpha dropped (grey and grey+alpha: 1; RGB, RGBA, palette and colour JPEG: 3).
 * 16-bit PNG samples are divided by 65535, 1/2/4-bit grey by 2^depth - 1.
 *
 * @throws {UnprocessableError} no files.
 * @throws {UnsupportedMediaTypeError} a file that is neither PNG nor JPEG, or a JPEG coding that
 *   the decoder lacks (lossless, hierarchical, arithmetic).
 * @throws {UnsupportedMediaTypeError} also a 12-bit (or other non-8-bit) JPEG.
 * @throws {LimitExceededError} more than `limits.maxImages` files, width × height × channels
 *   beyond `limits.maxPixels` (per file, before decoding, and for the whole batch), or a file
 *   whose own header implies a decoded sample buffer (width × height × the file's channels ×
 *   bytes per sample) beyond `limits.maxPixels` bytes, whatever the channels it converts to.
 * @throws {ShapeMismatchError} a file whose H × W differs from the first's.
 * @throws {MalformedInputError} a truncated or corrupt file.
 */
export function imagesFromFiles(
  files: ImageFile[],
  limits: ImageLimits,
  channels?: 1 | 3,
): ImageBatch {
  ensure(files.length > 0, () => new UnprocessableError("at least one image file is required"));
  ensure(
    files.length <= limits.maxImages,
    () =>
      new LimitExceededError(
        `${files.length} images were sent; at most ${limits.maxImages} are allowed`,
        { images: files.length, maxImages: limits.maxImages },
      ),
  );
  // Pass 1: headers only, so every size problem is found before any pixel is decoded.
  const heads = files.map((f) => {
    const head = readHeader(f);
    const c = channels ?? head.channels;
    ensure(
      head.width * head.height * c <= limits.maxPixels,
      () =>
        new LimitExceededError(
          `image '${f.name}' is ${head.width}×${head.height}×${c}; at most ${limits.maxPixels} ` +
            "values per batch are allowed",
          { file: f.name, width: head.width, height: head.height, maxPixels: limits.maxPixels },
        ),
    );
    // What the decoder itself allocates follows the file, not the model: a 16-bit RGBA PNG
    // decodes to 8 bytes per pixel even when the model wants one grey channel.
    const decoded = decodedBytes(head);
    ensure(
      decoded <= limits.maxPixels,
      () =>
        new LimitExceededError(
          `image '${f.name}' is ${head.width}×${head.height} with ${head.srcChannels} ` +
            `channel(s) of ${head.depth} bits in the file, ${decoded} bytes once decoded; at ` +
            `most ${limits.maxPixels} are allowed per image`,
          {
            file: f.name,
            width: head.width,
            height: head.height,
            fileChannels: head.srcChannels,
            bitDepth: head.depth,
            decodedBytes: decoded,
            maxPixels: limits.maxPixels,
          },
        ),
    );
    return head;
  });
  const first = heads[0];
  const c = channels ?? first.channels;
  heads.forEach((h, i) => {
    ensure(
      h.width === first.width && h.height === first.height,
      () =>
        new ShapeMismatchError(
          `all images must share one size: '${files[0].name}' is ${first.width}×${first.height} ` +
            `but '${files[i].name}' is ${h.width}×${h.height} (width×height)`,
          { first: files[0].name, file: files[i].name },
        ),
    );
  });
  const shape: [number, number, number, number] = [files.length, first.height, first.width, c];
  checkLimits(shape, limits);

  const per = first.height * first.width * c;
  const out = new Float32Array(files.length * per);
  files.forEach((f, i) => {
    const dst = out.subarray(i * per, (i + 1) * per);
    if (heads[i].format === "png") decodePngInto(f, heads[i], dst, c);
    else decodeJpegInto(f, heads[i], dst, c);
  });
  return { shape, data: out };
}

/**
 * Encodes one HWC image with values in [0,1] as an 8-bit PNG (values clamped, NaN as 0), for
 * reports and previews.
 *
 * @throws {ShapeMismatchError} `data.length` differs from h × w × c, or a size is not a positive
 *   integer.
 */
export function encodePng(h: number, w: number, c: 1 | 3, data: Float32Array): Uint8Array {
  ensure(
    Number.isInteger(h) && h > 0 && Number.isInteger(w) && w > 0 && (c === 1 || c === 3),
    () => new ShapeMismatchError(`cannot encode a ${h}×${w}×${c} PNG`),
  );
  ensure(
    data.length === h * w * c,
    () =>
      new ShapeMismatchError(`a ${h}×${w}×${c} PNG needs ${h * w * c} values, got ${data.length}`),
  );
  const px = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    px[i] = v > 0 ? (v < 1 ? Math.round(v * 255) : 255) : 0;
  }
  return encodePngRaw({ width: w, height: h, data: px, channels: c, depth: 8 });
}

function checkLimits(shape: [number, number, number, number], limits: ImageLimits): void {
  ensure(
    shape[0] <= limits.maxImages,
    () =>
      new LimitExceededError(
        `${shape[0]} images were sent; at most ${limits.maxImages} are allowed`,
        {
          images: shape[0],
          maxImages: limits.maxImages,
        },
      ),
  );
  const total = shape[0] * shape[1] * shape[2] * shape[3];
  ensure(
    total <= limits.maxPixels,
    () =>
      new LimitExceededError(
        `the batch (${shape.join("×")}) holds ${total} values; at most ${limits.maxPixels} ` +
          "are allowed",
        { shape, maxPixels: limits.maxPixels },
      ),
  );
}

function unravel(i: number, shape: readonly number[]): number[] {
  const pos = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    pos[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return pos;
}

interface Header {
  format: "png" | "jpeg";
  width: number;
  height: number;
  /** Colour channels with alpha dropped: 1 (grey) or 3. */
  channels: 1 | 3;
  /** PNG only: the IHDR fields needed to bound the inflated size. */
  depth: number;
  srcChannels: number;
  interlaced: boolean;
  /** PNG only: concatenated IDAT payloads. */
  idat?: Uint8Array;
  /** PNG only: the file reduced to its critical chunks, which is all the decoder sees. */
  critical?: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Bytes the decoder's own sample buffer takes for this file: width × height × the file's channels
 * × bytes per sample (sub-byte samples are unpacked to one byte each).
 */
function decodedBytes(h: Header): number {
  return h.width * h.height * h.srcChannels * Math.max(1, h.depth / 8);
}

function readHeader(f: ImageFile): Header {
  const b = f.bytes;
  if (b.length >= 8 && PNG_MAGIC.every((m, i) => b[i] === m)) return readPngHeader(f);
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return readJpegHeader(f);
  throw new UnsupportedMediaTypeError(
    `image '${f.name}' is neither PNG nor JPEG (by its first bytes); send PNG or JPEG files, ` +
      "or one .npy",
    { file: f.name },
  );
}

/** Allowed bit depths per PNG colour type (PNG spec, 11.2.2 Table 11.1). */
const PNG_DEPTHS: Record<number, { depths: number[]; samples: number; channels: 1 | 3 }> = {
  0: { depths: [1, 2, 4, 8, 16], samples: 1, channels: 1 },
  2: { depths: [8, 16], samples: 3, channels: 3 },
  3: { depths: [1, 2, 4, 8], samples: 1, channels: 3 },
  4: { depths: [8, 16], samples: 2, channels: 1 },
  6: { depths: [8, 16], samples: 4, channels: 3 },
};

function readPngHeader(f: ImageFile): Header {
  const b = f.bytes;
  const bad = (what: string) =>
    new MalformedInputError(`PNG '${f.name}' ${what}`, { file: f.name });
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const type = (at: number) => String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
  ensure(b.length >= 33, () => bad("is truncated before the end of its IHDR chunk"));
  ensure(
    view.getUint32(8) === 13 && type(12) === "IHDR",
    () => bad("does not start with a 13-byte IHDR chunk"),
  );
  const width = view.getUint32(16), height = view.getUint32(20);
  const depth = b[24], colorType = b[25], interlace = b[28];
  ensure(width > 0 && height > 0, () => bad(`declares an empty size ${width}×${height}`));
  const kind = PNG_DEPTHS[colorType];
  ensure(
    kind !== undefined && kind.depths.includes(depth),
    () => bad(`has an invalid colour type ${colorType} / bit depth ${depth}`),
  );
  ensure(b[26] === 0 && b[27] === 0 && interlace <= 1, () => bad("has unknown IHDR methods"));

  const parts: Uint8Array[] = [];
  // Ancillary chunks are dropped before decoding: fast-png inflates iCCP profiles without a cap,
  // and nothing here uses colour profiles or text.
  const critical: Uint8Array[] = [b.subarray(0, 8)];
  let at = 8, ended = false;
  while (at + 8 <= b.length) {
    const len = view.getUint32(at);
    const t = type(at + 4);
    ensure(at + 12 + len <= b.length, () => bad(`is truncated inside its ${t} chunk`));
    if (t === "IDAT") {
      parts.push(b.subarray(at + 8, at + 8 + len));
    }
    if (t === "IHDR" || t === "PLTE" || t === "IDAT" || t === "IEND") {
      critical.push(b.subarray(at, at + 12 + len));
    }
    at += 12 + len;
    if (t === "IEND") {
      ended = true;
      break;
    }
  }
  ensure(ended, () => bad("is truncated (no IEND chunk)"));
  ensure(parts.length > 0, () => bad("has no image data (no IDAT chunk)"));
  return {
    format: "png",
    width,
    height,
    channels: kind.channels,
    depth,
    srcChannels: kind.samples,
    interlaced: interlace === 1,
    idat: concatBytes(parts),
    critical: concatBytes(critical),
  };
}

/** Adam7 pass origins and steps (PNG spec, 8.2). */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

/** Inflated bytes accepted beyond what IHDR implies before a stream counts as a bomb. */
const PNG_EXCESS_BYTES = 1024;

/** Exact size of the filtered scanlines the IHDR implies: one filter byte per row per pass. */
function pngRawBytes(h: Header): number {
  const rowBytes = (w: number) => 1 + Math.ceil((w * h.srcChannels * h.depth) / 8);
  if (!h.interlaced) return h.height * rowBytes(h.width);
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const pw = Math.ceil(Math.max(0, h.width - x0) / dx);
    const ph = Math.ceil(Math.max(0, h.height - y0) / dy);
    if (pw > 0 && ph > 0) total += ph * rowBytes(pw);
  }
  return total;
}

function decodePngInto(f: ImageFile, h: Header, dst: Float32Array, c: 1 | 3): void {
  const bad = (what: string) =>
    new MalformedInputError(`PNG '${f.name}' ${what}`, { file: f.name });
  const expected = pngRawBytes(h);
  // Bounded inflate first: fast-png inflates without a cap, so a small IHDR over a huge zlib
  // stream would otherwise allocate whatever the stream expands to.
  // A little excess is tolerated, as libpng does ("extra compressed data" is only a warning).
  let inflated: number;
  try {
    inflated = inflateSync(h.idat!, { maxOutputLength: expected + PNG_EXCESS_BYTES }).length;
  } catch (e) {
    if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw bad(`image data inflates to more than the ${expected} bytes its IHDR implies`);
    }
    throw bad(`has corrupt compressed image data (${(e as Error).message})`);
  }
  ensure(
    inflated >= expected,
    () => bad(`image data inflates to ${inflated} bytes; its IHDR implies ${expected}`),
  );
  let png;
  try {
    png = decodePngRaw(h.critical!);
  } catch (e) {
    throw bad(`cannot be decoded (${(e as Error).message})`);
  }
  ensure(
    png.width === h.width && png.height === h.height,
    () => bad("decoded to a size other than its IHDR's"),
  );
  const { width, height, depth } = png;
  const n = width * height;
  const data = png.data;
  if (h.srcChannels === 1 && h.channels === 3) {
    const pal = png.palette;
    ensure(
      pal !== undefined && pal.length > 0,
      () => bad("is a palette image without a PLTE chunk"),
    );
    const idx = unpack(data as Uint8Array, width, height, depth);
    for (let p = 0; p < n; p++) {
      const col = pal[idx[p]];
      ensure(col !== undefined, () => bad(`uses palette index ${idx[p]} of ${pal.length}`));
      writePixel(dst, p, c, col[0] / 255, col[1] / 255, col[2] / 255, false);
    }
    return;
  }
  const max = 2 ** depth - 1;
  const samples = depth < 8 ? unpack(data as Uint8Array, width, height, depth) : data;
  const sc = h.srcChannels;
  const grey = h.channels === 1;
  for (let p = 0; p < n; p++) {
    const o = p * sc;
    if (grey) writePixel(dst, p, c, samples[o] / max, 0, 0, true);
    else writePixel(dst, p, c, samples[o] / max, samples[o + 1] / max, samples[o + 2] / max, false);
  }
}

/** Unpacks 1/2/4-bit rows (each padded to a byte) into one sample per byte; 8-bit passes through. */
function unpack(data: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  if (depth === 8) return data;
  const rowBytes = Math.ceil((width * depth) / 8);
  const out = new Uint8Array(width * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      out[y * width + x] = (data[y * rowBytes + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function writePixel(
  dst: Float32Array,
  p: number,
  c: 1 | 3,
  r: number,
  g: number,
  b: number,
  grey: boolean,
): void {
  if (c === 1) {
    dst[p] = grey ? r : 0.299 * r + 0.587 * g + 0.114 * b;
  } else if (grey) {
    dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = r;
  } else {
    dst[3 * p] = r;
    dst[3 * p + 1] = g;
    dst[3 * p + 2] = b;
  }
}

/** Start-of-frame markers (ITU T.81, B.1.1.3); C4, C8 and CC are not frames. */
function isSof(m: number): boolean {
  return m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
}

function readJpegHeader(f: ImageFile): Header {
  const b = f.bytes;
  const bad = (what: string) =>
    new MalformedInputError(`JPEG '${f.name}' ${what}`, { file: f.name });
  let at = 2;
  for (;;) {
    ensure(at < b.length, () => bad("is truncated before its frame header (SOF)"));
    ensure(b[at] === 0xff, () => bad(`has a bad marker at byte ${at}`));
    while (at < b.length && b[at] === 0xff) at++; // fill bytes
    ensure(at < b.length, () => bad("is truncated before its frame header (SOF)"));
    const m = b[at++];
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue; // no length field
    // DAC (arithmetic-coding conditioning) only appears in arithmetic-coded JPEGs.
    ensure(
      m !== 0xcc,
      () =>
        new UnsupportedMediaTypeError(
          `JPEG '${f.name}' is arithmetic-coded (it has a DAC segment); baseline, extended and ` +
            "progressive Huffman JPEGs are supported",
          { file: f.name },
        ),
    );
    ensure(
      m !== 0xd9 && m !== 0xda && m !== 0xd8 && m !== 0x00,
      () => bad("has no frame header (SOF) before its image data"),
    );
    ensure(at + 2 <= b.length, () => bad("is truncated inside a marker segment"));
    const len = (b[at] << 8) | b[at + 1];
    ensure(len >= 2 && at + len <= b.length, () => bad("is truncated inside a marker segment"));
    if (isSof(m)) {
      ensure(len >= 8, () => bad("has a short frame header"));
      const height = (b[at + 3] << 8) | b[at + 4];
      const width = (b[at + 5] << 8) | b[at + 6];
      const precision = b[at + 2];
      const comps = b[at + 7];
      ensure(
        m <= 0xc2,
        () =>
          new UnsupportedMediaTypeError(
            `JPEG '${f.name}' uses a coding (SOF 0x${m.toString(16)}) that is not supported; ` +
              "baseline, extended and progressive Huffman JPEGs are",
            { file: f.name },
          ),
      );
      ensure(
        precision === 8,
        () =>
          new UnsupportedMediaTypeError(
            `JPEG '${f.name}' has ${precision}-bit samples; only 8-bit JPEGs are supported`,
            { file: f.name, precision },
          ),
      );
      ensure(width > 0 && height > 0, () => bad(`declares an empty size ${width}×${height}`));
      ensure(
        comps === 1 || comps === 3 || comps === 4,
        () => bad(`has ${comps} colour components (1, 3 or 4 are allowed)`),
      );
      return {
        format: "jpeg",
        width,
        height,
        channels: comps === 1 ? 1 : 3,
        depth: 8,
        srcChannels: comps,
        interlaced: false,
      };
    }
    at += len;
  }
}

/**
 * jpeg-js's own allocation cap. Measured: it books 6 bytes per pixel per component (coefficient
 * blocks, component lines, the planar result) plus 3 for the RGB output, i.e. 21 B/px for colour;
 * 8 per component + 4, over the MCU-padded size, leaves a third of headroom.
 */
function jpegMemoryMb(h: Header): number {
  return Math.ceil(((h.width + 16) * (h.height + 16) * (h.srcChannels * 8 + 4)) / 2 ** 20) + 4;
}

function decodeJpegInto(f: ImageFile, h: Header, dst: Float32Array, c: 1 | 3): void {
  let img;
  try {
    img = jpeg.decode(f.bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: (h.width * h.height) / 1e6 + 1e-6,
      maxMemoryUsageInMB: jpegMemoryMb(h),
    });
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new MalformedInputError(
      `JPEG '${f.name}' cannot be decoded (${(e as Error).message})`,
      { file: f.name },
    );
  }
  ensure(
    img.width === h.width && img.height === h.height && img.data.length === h.width * h.height * 3,
    () =>
      new MalformedInputError(`JPEG '${f.name}' decoded to an unexpected size`, { file: f.name }),
  );
  const d = img.data;
  const grey = h.channels === 1;
  for (let p = 0; p < h.width * h.height; p++) {
    writePixel(dst, p, c, d[3 * p] / 255, d[3 * p + 1] / 255, d[3 * p + 2] / 255, grey);
  }
}

/**
 * Checks a batch built by a library caller (the parsers above already guarantee all of it): rank
 * 4 with the model's `[H, W, C]`, as many values as the shape says, every pixel in [0,1].
 *
 * @throws {ShapeMismatchError} another shape, or a data length that contradicts it.
 * @throws {UnprocessableError} naming the first pixel outside [0,1] (NaN included).
 */
export function checkBatchFits(images: ImageBatch, inputShape: readonly number[]): void {
  const shape = images.shape;
  const [n, h, w, c] = shape;
  const [eh, ew, ec] = inputShape;
  if (!(shape.length === 4 && h === eh && w === ew && c === ec)) {
    throw new ShapeMismatchError(
      `images have shape [${shape.join(", ")}]; the model expects [N, ${eh}, ${ew}, ${ec}]`,
      { images: shape, model: inputShape },
    );
  }
  if (images.data.length !== n * h * w * c) {
    throw new ShapeMismatchError(
      `images hold ${images.data.length} values; shape [${shape.join(", ")}] needs ${
        n * h * w * c
      }`,
    );
  }
  const per = h * w * c;
  const data = images.data;
  for (let j = 0; j < data.length; j++) {
    const v = data[j];
    // `!(v >= 0 && v <= 1)` also catches NaN.
    if (!(v >= 0 && v <= 1)) {
      const i = Math.floor(j / per);
      throw new UnprocessableError(
        `pixel ${j - i * per} of image ${i} is ${v}; pixels must lie in [0,1]`,
        { index: i },
      );
    }
  }
}

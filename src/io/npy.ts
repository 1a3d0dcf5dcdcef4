/**
 * NumPy `.npy` reader and writer (format versions 1.0, 2.0 and 3.0).
 *
 * Format reference: NEP 1, "A simple file format for NumPy arrays", and `numpy.lib.format`.
 * A file is the magic `\x93NUMPY`, a major and minor version byte, a little-endian header length
 * (uint16 for 1.0, uint32 for 2.0/3.0), an ASCII Python dict literal with the keys `descr`,
 * `fortran_order` and `shape`, padded with spaces and ending in `\n`, then the raw data.
 *
 * The header is read with a small strict parser of its own (never `eval`): a hostile upload can
 * only ever produce a `MalformedInputError` (400) or a `LimitExceededError` (413).
 *
 * @module
 */
import { ensure, LimitExceededError, MalformedInputError, ShapeMismatchError } from "../errors.ts";

/** The dtypes this service reads; everything else (object, structured, complex, ...) is refused. */
export type NpyDtype =
  | "uint8"
  | "int32"
  | "int64"
  | "float32"
  | "float64"
  | "bool"
  | "int8"
  | "int16"
  | "uint16"
  | "uint32"
  | "uint64";

/** Any typed array an `NdArray` can hold. */
export type NpyData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

/** A dense C-order array. `data.length` equals the product of `shape` (1 for a scalar). */
export interface NdArray {
  dtype: NpyDtype;
  shape: number[];
  /** `bool` arrays are a `Uint8Array` of 0/1, `int64` a `BigInt64Array`, `uint64` a `BigUint64Array`. */
  data: NpyData;
}

/** Optional caps checked before any data is copied. */
export interface NpyLimits {
  /** Largest accepted file, in bytes, header included. Default: no cap. */
  maxBytes?: number;
  /** Largest accepted element count (product of `shape`). Default: no cap. */
  maxElements?: number;
}

/** What `encodeNpy` accepts: a dtype, a shape and values in C order. */
export interface NpyInput {
  dtype: NpyDtype;
  shape: readonly number[];
  data: ArrayLike<number> | NpyData;
}

interface DtypeInfo {
  readonly dtype: NpyDtype;
  readonly itemsize: number;
  readonly make: (buf: ArrayBuffer) => NpyData;
}

/** Keyed by numpy's type code (kind + itemsize), as in `dtype.str` without the byte order. */
const CODES: Readonly<Record<string, DtypeInfo>> = {
  u1: { dtype: "uint8", itemsize: 1, make: (b) => new Uint8Array(b) },
  b1: { dtype: "bool", itemsize: 1, make: (b) => new Uint8Array(b) },
  i1: { dtype: "int8", itemsize: 1, make: (b) => new Int8Array(b) },
  i2: { dtype: "int16", itemsize: 2, make: (b) => new Int16Array(b) },
  u2: { dtype: "uint16", itemsize: 2, make: (b) => new Uint16Array(b) },
  i4: { dtype: "int32", itemsize: 4, make: (b) => new Int32Array(b) },
  u4: { dtype: "uint32", itemsize: 4, make: (b) => new Uint32Array(b) },
  i8: { dtype: "int64", itemsize: 8, make: (b) => new BigInt64Array(b) },
  u8: { dtype: "uint64", itemsize: 8, make: (b) => new BigUint64Array(b) },
  f4: { dtype: "float32", itemsize: 4, make: (b) => new Float32Array(b) },
  f8: { dtype: "float64", itemsize: 8, make: (b) => new Float64Array(b) },
};

const CODE_OF: Readonly<Record<NpyDtype, string>> = Object.fromEntries(
  Object.entries(CODES).map(([code, info]) => [info.dtype, code]),
) as Record<NpyDtype, string>;

const SUPPORTED =
  "|u1, |b1, |i1, <i2, <u2, <i4, <u4, <i8, <u8, <f4, <f8 (big-endian '>' is converted)";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
/** numpy caps `ndim` at 64 (NPY_MAXDIMS since 2.0); anything beyond is not a numpy file. */
const MAX_RANK = 64;
/** numpy's own cap on the header it will read, to bound parsing work on hostile input. */
const MAX_HEADER_BYTES = 1 << 20;
/** numpy aligns the data offset to 64 bytes so memory-mapped arrays are aligned. */
const ALIGN = 64;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function malformed(message: string): MalformedInputError {
  return new MalformedInputError(`invalid .npy file: ${message}`);
}

/**
 * Parses a `.npy` file (format version 1.0, 2.0 and 3.0 headers) into a fresh, aligned typed
 * array; the input is never aliased, so unaligned data offsets are fine.
 *
 * Accepted `descr`: `|u1 |b1 |i1 <i2 <u2 <i4 <u4 <i8 <u8 <f4 <f8`; the byte order may also be `=`
 * (native, taken as little endian as numpy writes it) or `|`, and big-endian `>` data is
 * byte-swapped rather than refused. `fortran_order: True` is accepted only where the layout equals
 * C order (at most one dimension longer than 1).
 *
 * @throws {LimitExceededError} the file is larger than `limits.maxBytes`, or the element count
 *   exceeds `limits.maxElements` or cannot be represented exactly (beyond 2^53).
 * @throws {MalformedInputError} anything else: empty or truncated file, bad magic or version, a
 *   header that is not a strict dict literal, unsupported dtype, Fortran order, bad dims, or a data
 *   length that differs from `product(shape) * itemsize` (shorter or longer).
 */
export function parseNpy(bytes: Uint8Array, limits: NpyLimits = {}): NdArray {
  if (limits.maxBytes !== undefined && bytes.length > limits.maxBytes) {
    throw new LimitExceededError(
      `.npy file is ${bytes.length} bytes; at most ${limits.maxBytes} are allowed`,
      { bytes: bytes.length, maxBytes: limits.maxBytes },
    );
  }
  ensure(bytes.length > 0, () => malformed("the file is empty"));
  ensure(
    bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b),
    () => malformed("it does not start with the magic string \\x93NUMPY"),
  );
  ensure(bytes.length >= 8, () => malformed("the file ends inside the version bytes"));
  const major = bytes[6], minor = bytes[7];
  ensure(
    (major === 1 || major === 2 || major === 3) && minor === 0,
    () => malformed(`format version ${major}.${minor} is not supported (1.0, 2.0, 3.0 are)`),
  );
  const lenBytes = major === 1 ? 2 : 4;
  ensure(bytes.length >= 8 + lenBytes, () => malformed("the file ends inside the header length"));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = 8 + lenBytes;
  ensure(
    headerLen <= MAX_HEADER_BYTES,
    () => malformed(`header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`),
  );
  ensure(
    headerStart + headerLen <= bytes.length,
    () =>
      malformed(
        `header length ${headerLen} runs past the end of the ${bytes.length}-byte file`,
      ),
  );
  const header = parseHeader(bytes.subarray(headerStart, headerStart + headerLen));
  const { info, bigEndian } = parseDescr(header.descr);

  const shape = header.shape;
  let count = 1;
  for (const d of shape) count *= d;
  if (!Number.isSafeInteger(count)) {
    throw new LimitExceededError(`.npy shape (${shape.join(", ")}) has too many elements`, {
      shape,
    });
  }
  if (limits.maxElements !== undefined && count > limits.maxElements) {
    throw new LimitExceededError(
      `.npy shape (${shape.join(", ")}) has ${count} elements; at most ${limits.maxElements} ` +
        "are allowed",
      { shape, elements: count, maxElements: limits.maxElements },
    );
  }
  if (header.fortranOrder) {
    ensure(
      shape.filter((d) => d > 1).length <= 1,
      () =>
        malformed(
          "fortran_order True is not supported; save a C-order array " +
            "(np.save(f, np.ascontiguousarray(x)))",
        ),
    );
  }

  const dataStart = headerStart + headerLen;
  const expected = count * info.itemsize;
  const found = bytes.length - dataStart;
  ensure(
    found === expected,
    () =>
      malformed(
        `shape (${shape.join(", ")}) of ${header.descr} needs ${expected} data bytes but the ` +
          `file holds ${found}${found < expected ? " (truncated)" : " (trailing bytes)"}`,
      ),
  );

  // Copying gives an aligned buffer owned by the result, whatever the caller's offset.
  const copy = bytes.slice(dataStart);
  if (bigEndian === HOST_LITTLE_ENDIAN) byteSwap(copy, info.itemsize);
  if (info.dtype === "bool") {
    for (let i = 0; i < copy.length; i++) copy[i] = copy[i] === 0 ? 0 : 1;
  }
  return { dtype: info.dtype, shape, data: info.make(copy.buffer) };
}

/**
 * Encodes a C-order little-endian `.npy`: format 1.0, or 2.0 only when the header exceeds 65535
 * bytes. Numbers are converted to `dtype`; integer dtypes require integral values in range (an
 * `int64` input may be a `BigInt64Array` or safe-integer numbers).
 *
 * @throws {ShapeMismatchError} `data.length` differs from the product of `shape`, a dim is not a
 *   non-negative integer, or a value does not fit the integer dtype.
 */
export function encodeNpy(arr: NpyInput): Uint8Array {
  const code = CODE_OF[arr.dtype];
  ensure(code !== undefined, () => new ShapeMismatchError(`cannot encode dtype '${arr.dtype}'`));
  const info = CODES[code];
  let count = 1;
  for (const d of arr.shape) {
    ensure(
      Number.isSafeInteger(d) && d >= 0,
      () => new ShapeMismatchError(`shape (${arr.shape.join(", ")}) has an invalid dim ${d}`),
    );
    count *= d;
  }
  ensure(
    arr.data.length === count,
    () =>
      new ShapeMismatchError(
        `data has ${arr.data.length} values but shape (${arr.shape.join(", ")}) needs ${count}`,
      ),
  );
  const payload = toBytes(info, arr.data);
  if (!HOST_LITTLE_ENDIAN) byteSwap(payload, info.itemsize);

  const order = info.itemsize === 1 ? "|" : "<";
  const dims = arr.shape.length === 1 ? `${arr.shape[0]},` : arr.shape.join(", ");
  const dict = `{'descr': '${order}${code}', 'fortran_order': False, 'shape': (${dims}), }`;
  let major = 1;
  let prefix = 10;
  if (padded(prefix, dict.length) > 0xffff) {
    major = 2;
    prefix = 12;
  }
  const headerLen = padded(prefix, dict.length);
  const out = new Uint8Array(prefix + headerLen + payload.length);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  for (let i = 0; i < headerLen - 1; i++) {
    out[prefix + i] = i < dict.length ? dict.charCodeAt(i) : 0x20;
  }
  out[prefix + headerLen - 1] = 0x0a;
  out.set(payload, prefix + headerLen);
  return out;
}

/** Header length (dict + spaces + `\n`) that puts the data at a multiple of `ALIGN`. */
function padded(prefix: number, dictLen: number): number {
  const total = Math.ceil((prefix + dictLen + 1) / ALIGN) * ALIGN;
  return total - prefix;
}

const INT_RANGE: Partial<Record<NpyDtype, [number, number]>> = {
  uint8: [0, 0xff],
  bool: [0, 1],
  int8: [-0x80, 0x7f],
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

function toBytes(info: DtypeInfo, data: ArrayLike<number> | NpyData): Uint8Array {
  const out = new Uint8Array(data.length * info.itemsize);
  const target = info.make(out.buffer);
  if (data.constructor === target.constructor && info.dtype !== "bool") {
    // Same representation: a byte copy, no per-element checks needed.
    const src = data as NpyData;
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return out;
  }
  const range = INT_RANGE[info.dtype];
  const fail = (i: number, v: unknown) =>
    new ShapeMismatchError(`value ${v} at index ${i} does not fit dtype ${info.dtype}`);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (range) ensure(v >= BigInt(range[0]) && v <= BigInt(range[1]), () => fail(i, v));
      if (target instanceof BigInt64Array || target instanceof BigUint64Array) target[i] = v;
      else target[i] = Number(v);
    }
    return out;
  }
  if (target instanceof BigInt64Array || target instanceof BigUint64Array) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i] as number;
      ensure(Number.isSafeInteger(v) && (range === undefined || v >= range[0]), () => fail(i, v));
      target[i] = BigInt(v);
    }
    return out;
  }
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (range) ensure(Number.isInteger(v) && v >= range[0] && v <= range[1], () => fail(i, v));
    target[i] = v;
  }
  return out;
}

function byteSwap(buf: Uint8Array, itemsize: number): void {
  if (itemsize === 1) return;
  for (let i = 0; i < buf.length; i += itemsize) {
    for (let a = i, b = i + itemsize - 1; a < b; a++, b--) {
      const t = buf[a];
      buf[a] = buf[b];
      buf[b] = t;
    }
  }
}

function parseDescr(descr: string): { info: DtypeInfo; bigEndian: boolean } {
  const m = /^([<>=|]?)([a-zA-Z]\d+)$/.exec(descr);
  const code = m?.[2];
  const info = code !== undefined && Object.hasOwn(CODES, code) ? CODES[code] : undefined;
  if (m === null || info === undefined) {
    const what = descr.startsWith("|O") || descr === "O"
      ? "object arrays are not supported (they would need pickle)"
      : `dtype '${descr}' is not supported`;
    throw malformed(`${what}; supported: ${SUPPORTED}`);
  }
  return { info, bigEndian: m[1] === ">" && info.itemsize > 1 };
}

interface Header {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

type Value = string | boolean | number[];

/**
 * Strict reader for the one dict literal numpy writes: string keys, and values that are a string,
 * `True`/`False` or a tuple of non-negative integers (with Python 2's optional `L` suffix). A
 * list value for `descr` means a structured dtype and is refused by name.
 */
function parseHeader(raw: Uint8Array): Header {
  let text = "";
  for (const b of raw) {
    ensure(
      (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09,
      () => malformed(`the header contains the non-ASCII or control byte 0x${b.toString(16)}`),
    );
    text += String.fromCharCode(b);
  }
  let pos = 0;
  const fail = (what: string): never => {
    throw malformed(`header ${what} at offset ${pos}: ${JSON.stringify(text.slice(0, 120))}`);
  };
  const ws = () => {
    while (pos < text.length && " \t\r\n".includes(text[pos])) pos++;
  };
  const expect = (ch: string) => {
    ws();
    if (text[pos] !== ch) fail(`expected '${ch}'`);
    pos++;
  };
  const str = (): string => {
    ws();
    const q = text[pos];
    if (q !== "'" && q !== '"') fail("expected a quoted string");
    const end = text.indexOf(q, pos + 1);
    if (end < 0) fail("has an unterminated string");
    const s = text.slice(pos + 1, end);
    if (s.includes("\\") || s.includes("\n")) fail("has an escaped or multi-line string");
    pos = end + 1;
    return s;
  };
  const int = (): number => {
    ws();
    if (text[pos] === "-") fail("has a negative dimension");
    const m = /^\d+/.exec(text.slice(pos, pos + 32));
    if (m === null) fail("expected a non-negative integer dimension");
    pos += m![0].length;
    if (text[pos] === "L") pos++;
    if (text[pos] === "." || text[pos] === "e" || text[pos] === "E" || text[pos] === "j") {
      fail("has a non-integer dimension");
    }
    const n = Number(m![0]);
    if (!Number.isSafeInteger(n)) {
      throw new LimitExceededError(`.npy dimension ${m![0]} is too large`);
    }
    return n;
  };
  const tuple = (): number[] => {
    expect("(");
    const dims: number[] = [];
    ws();
    if (text[pos] === ")") {
      pos++;
      return dims;
    }
    for (;;) {
      dims.push(int());
      if (dims.length > MAX_RANK) fail(`has more than ${MAX_RANK} dimensions`);
      ws();
      if (text[pos] === ")") {
        // Python needs the trailing comma for a 1-tuple; `(3)` is just the integer 3.
        if (dims.length === 1) fail("has '(n)' where a tuple '(n,)' is required");
        pos++;
        return dims;
      }
      expect(",");
      ws();
      if (text[pos] === ")") {
        pos++;
        return dims;
      }
    }
  };
  const value = (): Value => {
    ws();
    const c = text[pos];
    if (c === "'" || c === '"') return str();
    if (c === "(") return tuple();
    if (text.startsWith("True", pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith("False", pos)) {
      pos += 5;
      return false;
    }
    if (c === "[") {
      throw malformed(`structured dtypes are not supported; supported: ${SUPPORTED}`);
    }
    return fail("has an unexpected value");
  };

  const entries = new Map<string, Value>();
  expect("{");
  ws();
  while (text[pos] !== "}") {
    const key = str();
    if (entries.has(key)) fail(`repeats the key '${key}'`);
    expect(":");
    entries.set(key, value());
    ws();
    if (text[pos] === ",") pos++;
    else if (text[pos] !== "}") fail("expected ',' or '}'");
    ws();
    if (pos >= text.length) fail("ends before '}'");
  }
  pos++;
  ws();
  if (pos !== text.length) fail("has trailing characters after the dict");

  const keys = [...entries.keys()].sort().join(",");
  if (keys !== "descr,fortran_order,shape") {
    fail(`must have exactly the keys descr, fortran_order, shape (found: ${keys || "none"})`);
  }
  const descr = entries.get("descr");
  const fortranOrder = entries.get("fortran_order");
  const shape = entries.get("shape");
  if (typeof descr !== "string") fail("'descr' must be a string");
  if (typeof fortranOrder !== "boolean") fail("'fortran_order' must be True or False");
  if (!Array.isArray(shape)) fail("'shape' must be a tuple of integers");
  return {
    descr: descr as string,
    fortranOrder: fortranOrder as boolean,
    shape: shape as number[],
  };
}

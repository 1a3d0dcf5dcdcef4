/**
 * Compact, exact encodings of numeric arrays inside the JSON round state: base64 of the
 * little-endian bytes. Float32 values survive bit for bit, which resumption needs (momentum,
 * teacher weights and logits must come back exactly as they left).
 *
 * @module
 */
import { ValidationError } from "../errors.ts";
import { concatBytes } from "../io/bytes.ts";

const CHUNK = 0x8000;

/** Base64 of raw bytes. */
export function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    s += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(s);
}

/** Bytes of a base64 string; `what` names the field in the error. */
export function base64ToBytes(b64: string, what: string): Uint8Array {
  let s: string;
  try {
    s = atob(b64);
  } catch {
    throw new ValidationError(`state field '${what}' is not valid base64`);
  }
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// Typed arrays are written in the platform's order; every platform Deno runs on is little-endian,
// and the check below turns a big-endian host into a loud failure instead of garbage.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
if (!LITTLE_ENDIAN) throw new Error("purify/codec.ts assumes a little-endian host");

export function f32ToBase64(a: Float32Array): string {
  return bytesToBase64(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

export function i32ToBase64(a: Int32Array): string {
  return bytesToBase64(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

/**
 * A float32 array of exactly `length` values from base64.
 *
 * @throws {ValidationError} bad base64 or a length other than `length` (the state was edited or
 *   belongs to another dataset or model).
 */
export function base64ToF32(b64: string, length: number | null, what: string): Float32Array {
  const out = new Float32Array(words(b64, length, "float32", what).buffer);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) {
      throw new ValidationError(`state field '${what}' holds a non-finite value at index ${i}`);
    }
  }
  return out;
}

/** An int32 array of exactly `length` values, each in `[lo, hi]`. */
export function base64ToI32(
  b64: string,
  length: number,
  lo: number,
  hi: number,
  what: string,
): Int32Array {
  const out = new Int32Array(words(b64, length, "int32", what).buffer);
  for (let i = 0; i < out.length; i++) {
    if (out[i] < lo || out[i] > hi) {
      throw new ValidationError(
        `state field '${what}' has ${out[i]} at index ${i}; allowed: ${lo}..${hi}`,
      );
    }
  }
  return out;
}

/** The bytes of exactly `length` 4-byte values of `kind`. */
function words(b64: string, length: number | null, kind: string, what: string): Uint8Array {
  const bytes = base64ToBytes(b64, what);
  if (length === null ? bytes.length % 4 !== 0 : bytes.length !== length * 4) {
    throw new ValidationError(
      `state field '${what}' holds ${bytes.length / 4} ${kind} values; ${length} are required`,
      { field: what, expected: length, got: bytes.length / 4 },
    );
  }
  return bytes;
}

/** A uint8 array of exactly `length` values, each at most `max`. */
export function base64ToU8(b64: string, length: number, max: number, what: string): Uint8Array {
  const out = base64ToBytes(b64, what);
  if (out.length !== length) {
    throw new ValidationError(
      `state field '${what}' holds ${out.length} entries; ${length} are required`,
      { field: what, expected: length, got: out.length },
    );
  }
  for (let i = 0; i < out.length; i++) {
    if (out[i] > max) {
      throw new ValidationError(
        `state field '${what}' has ${out[i]} at index ${i}; allowed: 0..${max}`,
      );
    }
  }
  return out;
}

/** Lower-case hex SHA-256 of `bytes` (or of several buffers, in order). */
export async function sha256Hex(...parts: Uint8Array[]): Promise<string> {
  const all = concatBytes(parts);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * JSON with object keys sorted at every level, so equal content hashes equally whatever order a
 * client wrote the keys in.
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

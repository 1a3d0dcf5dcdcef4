import assert from "node:assert/strict";
import { ValidationError } from "../../src/errors.ts";
import {
  base64ToF32,
  base64ToI32,
  base64ToU8,
  bytesToBase64,
  canonicalJson,
  f32ToBase64,
  i32ToBase64,
  sha256Hex,
} from "../../src/purify/codec.ts";

Deno.test("float32 arrays survive base64 bit for bit", () => {
  const a = Float32Array.from([0, -0, 1.5e-45, 3.4e38, -1 / 3, Math.PI]);
  const b = base64ToF32(f32ToBase64(a), a.length, "x");
  assert.deepEqual(new Uint8Array(b.buffer), new Uint8Array(a.buffer));
  const big = Float32Array.from({ length: 100_000 }, (_, i) => Math.sin(i));
  assert.deepEqual(base64ToF32(f32ToBase64(big), big.length, "big"), big);
});

Deno.test("decoding refuses bad base64, a wrong length and out-of-range values", () => {
  assert.throws(() => base64ToF32("***", 1, "x"), ValidationError);
  assert.throws(() => base64ToF32(f32ToBase64(new Float32Array(3)), 4, "x"), /holds 3 float32/);
  assert.throws(
    () => base64ToF32(f32ToBase64(Float32Array.from([NaN])), 1, "x"),
    /non-finite/,
  );
  assert.throws(
    () => base64ToI32(i32ToBase64(Int32Array.from([5])), 1, -1, 3, "r"),
    /allowed: -1..3/,
  );
  assert.throws(() => base64ToU8(bytesToBase64(Uint8Array.from([3])), 1, 2, "m"), /allowed: 0..2/);
  assert.throws(
    () => base64ToU8(bytesToBase64(Uint8Array.from([1, 1])), 3, 2, "m"),
    /3 are required/,
  );
});

Deno.test("canonicalJson() ignores key order and undefined fields", () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }] }), '{"a":[{"d":2}],"b":1}');
  assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
});

Deno.test("sha256Hex() matches the known digest of 'abc'", async () => {
  assert.equal(
    await sha256Hex(new TextEncoder().encode("ab"), new TextEncoder().encode("c")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

import assert from "node:assert/strict";
import { LimitExceededError, MalformedInputError } from "../../src/errors.ts";
import {
  checkPrototypeKeys,
  jsonDepth,
  MAX_JSON_DEPTH,
  parseJsonBytes,
  parseJsonText,
} from "../../src/io/json_guard.ts";

const nest = (n: number, open = "[", close = "]") => open.repeat(n) + close.repeat(n);

Deno.test("parseJsonText() accepts exactly MAX_JSON_DEPTH levels and refuses one more with 400", () => {
  assert.equal(MAX_JSON_DEPTH, 64);
  assert.ok(Array.isArray(parseJsonText(nest(64), "doc")));
  assert.throws(
    () => parseJsonText(nest(65), "'state'"),
    (e) =>
      e instanceof MalformedInputError && /'state' nests deeper than 64 levels/.test(e.message),
  );
  // Objects count as levels like arrays do.
  const objects = '{"a":'.repeat(65) + "1" + "}".repeat(65);
  assert.throws(() => parseJsonText(objects, "doc"), /deeper than 64/);
  assert.deepEqual(parseJsonText('{"a":'.repeat(64) + "1" + "}".repeat(64), "doc") !== null, true);
});

Deno.test("parseJsonText() refuses a 5,000- and a 1,000,000-deep document quickly, before JSON.parse builds it", () => {
  for (const n of [5_000, 1_000_000]) {
    const t0 = performance.now();
    assert.throws(() => parseJsonText(nest(n), "doc"), MalformedInputError);
    assert.ok(performance.now() - t0 < 500, `${n} deep took too long`);
  }
  // Unterminated: the depth still decides first.
  assert.throws(() => parseJsonText("[".repeat(1_000_000), "doc"), /deeper than 64/);
});

Deno.test("jsonDepth() ignores brackets inside strings, escaped quotes included", () => {
  assert.equal(jsonDepth('["[[[[", "\\"[[[", {"k]": "{{"}]').depth, 2);
  assert.equal(jsonDepth('"\\\\"').depth, 0);
  assert.equal(jsonDepth("[[1],[2,[3]]]").depth, 3);
  assert.equal(jsonDepth("7").depth, 0);
  assert.equal(jsonDepth(nest(10), 4).overAt, 4);
});

Deno.test("parseJsonText() refuses prototype-shaped keys at any depth, naming the path", () => {
  for (const key of ["__proto__", "constructor", "prototype"]) {
    assert.throws(
      () => parseJsonText(`{"a": [{"b": {"${key}": 1}}]}`, "'params'"),
      (e) =>
        e instanceof MalformedInputError && e.message.includes(`'${key}' at $.a[0].b`) &&
        e.message.startsWith("'params'"),
    );
  }
  // The guard can be turned off for documents whose keys are data.
  assert.deepEqual(
    Object.keys(
      parseJsonText('{"constructor": 1}', "doc", { forbidPrototypeKeys: false }) as object,
    ),
    ["constructor"],
  );
  checkPrototypeKeys({ proto: 1, nested: [{ fine: true }] }, "doc");
});

Deno.test("parseJsonBytes() checks the byte cap before decoding, and refuses invalid UTF-8 and JSON with 400", () => {
  const bytes = new TextEncoder().encode(JSON.stringify({ a: "x".repeat(100) }));
  assert.throws(() => parseJsonBytes(bytes, "doc", { maxBytes: 50 }), LimitExceededError);
  assert.deepEqual(parseJsonBytes(bytes, "doc", { maxBytes: 500 }), { a: "x".repeat(100) });
  assert.throws(
    () => parseJsonBytes(Uint8Array.from([0x7b, 0xff, 0x7d]), "model.json"),
    (e) =>
      e instanceof MalformedInputError && /model\.json is not valid JSON: .*UTF-8/.test(e.message),
  );
  assert.throws(
    () => parseJsonBytes(new TextEncoder().encode("{nope"), "model.json"),
    (e) => e instanceof MalformedInputError && /model\.json is not valid JSON/.test(e.message),
  );
  assert.throws(() => parseJsonText("x".repeat(20), "doc", { maxBytes: 10 }), LimitExceededError);
});

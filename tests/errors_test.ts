import assert from "node:assert/strict";
import { z } from "zod";
import { ValidationError } from "../src/errors.ts";
import { parseRoundParams } from "../src/purify/params.ts";
import { parseSchedule } from "../src/purify/schedule.ts";
import { parseTriggerSpec } from "../src/triggers/trigger.ts";
import { parseLabOptions } from "../src/lab/lab.ts";
import { parseJson } from "../src/http/form.ts";

const shape = (e: unknown) => {
  assert.ok(e instanceof ValidationError);
  assert.equal(e.status, 400);
  const issues = (e.details as { issues: unknown[] }).issues;
  assert.ok(issues.length > 0);
  for (const i of issues) {
    assert.deepEqual(Object.keys(i as object).sort(), ["message", "path"]);
    assert.equal(typeof (i as { path: unknown }).path, "string");
  }
  return issues as { path: string; message: string }[];
};

Deno.test("ValidationError.fromZod() lists each issue by path, the document's root for itself", () => {
  const S = z.object({ a: z.object({ b: z.int() }), c: z.string() });
  const r = S.safeParse({ a: { b: 1.5 } });
  assert.ok(!r.success);
  const e = ValidationError.fromZod(r.error, { label: "invalid thing", root: "thing" });
  assert.deepEqual(shape(e).map((i) => i.path), ["a.b", "c"]);
  assert.match(e.message, /^invalid thing: a\.b: .+; c: .+$/);
  const top = z.int().safeParse("x");
  assert.ok(!top.success);
  const t = ValidationError.fromZod(top.error, { label: "bad", root: "doc", hint: "send an int" });
  assert.deepEqual(shape(t).map((i) => i.path), ["doc"]);
  assert.match(t.message, /^bad: doc: .+; send an int$/);
  const p = ValidationError.fromZod(r.error, {
    label: "x",
    root: "params",
    prefix: "params",
    max: 1,
  });
  assert.deepEqual(shape(p).map((i) => i.path), ["params.a.b"]);
});

Deno.test("every parser of a JSON document reports its issues in the one shape", () => {
  const cases: [string, () => unknown][] = [
    ["params", () => parseRoundParams({ seed: -1 })],
    ["schedule", () => parseSchedule({ stages: "no" })],
    ["trigger", () => parseTriggerSpec({ type: "badnets", size: 0 })],
    ["lab", () => parseLabOptions({ poison_rate: 7 })],
    ["form", () => parseJson('{"eps": "big"}', z.object({ eps: z.number() }), "params")],
  ];
  for (const [name, run] of cases) {
    assert.throws(run, (e: unknown) => {
      const issues = shape(e);
      assert.ok(issues.every((i) => i.path.length > 0 && i.message.length > 0), name);
      return true;
    }, name);
  }
});

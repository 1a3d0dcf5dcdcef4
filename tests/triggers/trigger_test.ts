import assert from "node:assert/strict";
import { ShapeMismatchError, ValidationError } from "../../src/errors.ts";
import { backdoorLabel, canPoison } from "../../src/triggers/attack_mode.ts";
import { applyTrigger, parseTriggerSpec, TriggerSpecSchema } from "../../src/triggers/trigger.ts";

Deno.test("parseTriggerSpec() fills in each trigger's defaults and survives a JSON round trip", () => {
  const specs = ["badnets", "blend", "wanet"].map((type) => parseTriggerSpec({ type }));
  assert.deepEqual(specs[0], {
    type: "badnets",
    size: 3,
    position: "bottom-right",
    margin: 0,
    pattern: "checkerboard",
    value: 1,
    seed: 0,
  });
  assert.deepEqual(specs[1], { type: "blend", alpha: 0.1, pattern: "noise", seed: 0 });
  assert.deepEqual(specs[2], { type: "wanet", k: 4, strength: 0.5, seed: 0 });
  for (const s of specs) assert.deepEqual(parseTriggerSpec(JSON.parse(JSON.stringify(s))), s);
});

Deno.test("parseTriggerSpec() rejects unknown types, out-of-range values and unknown keys", () => {
  for (
    const bad of [
      { type: "trojannn" },
      { type: "blend", alpha: 0 },
      { type: "blend", alpha: 1.5 },
      { type: "badnets", size: 0 },
      { type: "wanet", k: 1 },
      { type: "wanet", seed: -1 },
      { type: "badnets", colour: "red" },
      "badnets",
      null,
    ]
  ) {
    assert.throws(() => parseTriggerSpec(bad), ValidationError, JSON.stringify(bad));
  }
  assert.match(
    (() => {
      try {
        parseTriggerSpec({ type: "blend", alpha: 2 });
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })(),
    /alpha/,
  );
});

Deno.test("the trigger spec schema converts to JSON Schema for the OpenAPI document", async () => {
  const { z } = await import("zod");
  const schema = z.toJSONSchema(TriggerSpecSchema, { io: "input" }) as Record<string, unknown>;
  assert.ok(Array.isArray(schema.oneOf) || Array.isArray(schema.anyOf));
});

Deno.test("applyTrigger() refuses a batch whose data does not match its shape", () => {
  const spec = parseTriggerSpec({ type: "blend" });
  assert.throws(
    () => applyTrigger(spec, { data: new Float32Array(10), shape: [1, 3, 3, 1] }),
    ShapeMismatchError,
  );
  assert.throws(
    () => applyTrigger(spec, { data: new Float32Array(0), shape: [1, 0, 3, 1] }),
    ShapeMismatchError,
  );
});

Deno.test("all-to-all relabels y as (y + 1) mod K; all-to-one relabels every image to the target", () => {
  assert.deepEqual([0, 1, 8, 9].map((y) => backdoorLabel(y, "all-to-all", 0, 10)), [1, 2, 9, 0]);
  assert.deepEqual([0, 3, 9].map((y) => backdoorLabel(y, "all-to-one", 2, 10)), [2, 2, 2]);
  assert.equal(canPoison(2, "all-to-one", 2), false);
  assert.equal(canPoison(3, "all-to-one", 2), true);
  assert.equal(canPoison(2, "all-to-all", 2), true);
});

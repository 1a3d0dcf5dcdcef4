import assert from "node:assert/strict";
import { ShapeMismatchError } from "../../src/errors.ts";
import { applyTrigger, parseTriggerSpec } from "../../src/triggers/trigger.ts";

function ramp(n: number, h: number, w: number, c: number): Float32Array {
  const x = new Float32Array(n * h * w * c);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 37) % 101) / 200;
  return x;
}

Deno.test("BadNets writes exactly a 3×3 checkerboard in the bottom-right corner and nothing else", () => {
  const [n, h, w, c] = [2, 8, 7, 3];
  const x = ramp(n, h, w, c);
  const before = x.slice();
  const out = applyTrigger(parseTriggerSpec({ type: "badnets" }), { data: x, shape: [n, h, w, c] });
  assert.deepEqual(x, before, "the input is not mutated");
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        for (let ch = 0; ch < c; ch++) {
          const k = ((b * h + i) * w + j) * c + ch;
          const pi = i - (h - 3), pj = j - (w - 3);
          if (pi >= 0 && pj >= 0) {
            assert.equal(out[k], (pi + pj) % 2 === 0 ? 1 : 0, `patch cell (${pi}, ${pj})`);
          } else {
            assert.equal(out[k], x[k], `pixel (${i}, ${j}) outside the patch`);
          }
        }
      }
    }
  }
});

Deno.test("BadNets honours size, corner, margin, solid pattern and value", () => {
  const [h, w] = [10, 10];
  const x = new Float32Array(h * w).fill(0.5);
  const spec = parseTriggerSpec({
    type: "badnets",
    size: 2,
    position: "top-left",
    margin: 1,
    pattern: "solid",
    value: 0.25,
  });
  const out = applyTrigger(spec, { data: x, shape: [1, h, w, 1] });
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const inPatch = i >= 1 && i < 3 && j >= 1 && j < 3;
      assert.equal(out[i * w + j], inPatch ? 0.25 : 0.5);
    }
  }
});

Deno.test("BadNets refuses a patch that does not fit the image", () => {
  const spec = parseTriggerSpec({ type: "badnets", size: 4, margin: 2 });
  assert.throws(
    () => applyTrigger(spec, { data: new Float32Array(25), shape: [1, 5, 5, 1] }),
    ShapeMismatchError,
  );
});

import assert from "node:assert/strict";
import { ValidationError } from "../../src/errors.ts";
import type { Dataset } from "../../src/lab/dataset.ts";
import { liftToRgb32 } from "../../src/lab/lift.ts";

const grey = (n: number, h: number, w: number, c = 1): Dataset => ({
  x: Uint8Array.from({ length: n * h * w * c }, (_, i) => 1 + (i % 250)),
  y: Int32Array.from({ length: n }, (_, i) => i % 3),
  shape: [n, h, w, c],
  numClasses: 3,
});

Deno.test("liftToRgb32() pads a 28×28 grey image by 2 px of black and copies it to three channels", () => {
  const d = grey(2, 28, 28);
  const l = liftToRgb32(d);
  assert.deepEqual(l.shape, [2, 32, 32, 3]);
  assert.equal(l.y, d.y);
  for (let i = 0; i < 2; i++) {
    for (let r = 0; r < 32; r++) {
      for (let q = 0; q < 32; q++) {
        const inner = r >= 2 && r < 30 && q >= 2 && q < 30;
        const want = inner ? d.x[(i * 28 + r - 2) * 28 + q - 2] : 0;
        for (let ch = 0; ch < 3; ch++) {
          assert.equal(l.x[((i * 32 + r) * 32 + q) * 3 + ch], want, `${i} ${r} ${q} ${ch}`);
        }
      }
    }
  }
});

Deno.test("liftToRgb32() keeps 3-channel pixels and leaves a 32×32×3 set as it is", () => {
  const d = grey(1, 32, 32, 3);
  assert.deepEqual(liftToRgb32(d).x, d.x);
  const small = liftToRgb32(grey(1, 16, 30, 3));
  assert.deepEqual(small.shape, [1, 32, 32, 3]);
  assert.equal(small.x[((8 * 32) + 1) * 3 + 2], 3, "channel 2 of the first pixel");
});

Deno.test("liftToRgb32() refuses images larger than 32, odd margins and 2 channels", () => {
  for (const [h, w, c] of [[33, 32, 1], [27, 28, 1], [28, 29, 1], [28, 28, 2], [28, 28, 4]]) {
    assert.throws(() => liftToRgb32(grey(1, h, w, c)), ValidationError, `${h}×${w}×${c}`);
  }
});

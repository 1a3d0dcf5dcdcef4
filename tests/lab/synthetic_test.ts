import assert from "node:assert/strict";
import { ValidationError } from "../../src/errors.ts";
import { syntheticDataset } from "../../src/lab/synthetic.ts";

Deno.test("syntheticDataset() is reproducible from its seed, with balanced labels", () => {
  const a = syntheticDataset({ n: 60, numClasses: 6, seed: 5 });
  const b = syntheticDataset({ n: 60, numClasses: 6, seed: 5 });
  const c = syntheticDataset({ n: 60, numClasses: 6, seed: 6 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.x, c.x);
  assert.deepEqual(a.shape, [60, 16, 16, 1]);
  const counts = new Array(6).fill(0);
  for (const y of a.y) counts[y]++;
  assert.deepEqual(counts, new Array(6).fill(10));
});

Deno.test("syntheticDataset() draws distinct shapes per class, with dark corners", () => {
  const d = syntheticDataset({ n: 200, numClasses: 10, size: 16, noise: 0, seed: 1 });
  const means = Array.from({ length: 10 }, () => new Float64Array(256));
  const counts = new Array(10).fill(0);
  let corner = 0;
  for (let i = 0; i < 200; i++) {
    counts[d.y[i]]++;
    for (let p = 0; p < 256; p++) means[d.y[i]][p] += d.x[i * 256 + p];
    corner += d.x[i * 256 + 255];
  }
  assert.ok(corner / 200 < 40, "the bottom-right pixel is mostly background");
  for (let a = 0; a < 10; a++) {
    for (let b = a + 1; b < 10; b++) {
      let dist = 0;
      for (let p = 0; p < 256; p++) {
        dist += Math.abs(means[a][p] / counts[a] - means[b][p] / counts[b]);
      }
      assert.ok(dist / 256 > 5, `classes ${a} and ${b} differ on average`);
    }
  }
});

Deno.test("syntheticDataset() rejects out-of-range options", () => {
  for (
    const bad of [{ n: -1 }, { n: 4, size: 4 }, { n: 4, numClasses: 1 }, { n: 4, numClasses: 11 }, {
      n: 4,
      noise: 2,
    }]
  ) {
    assert.throws(() => syntheticDataset(bad), ValidationError, JSON.stringify(bad));
  }
});

Deno.test("syntheticDataset() with 3 channels tints each image alike across its shape, not by class", () => {
  const grey = syntheticDataset({ n: 60, size: 16, seed: 5 });
  const rgb = syntheticDataset({ n: 60, size: 16, seed: 5, channels: 3, noise: 0 });
  assert.deepEqual(rgb.shape, [60, 16, 16, 3]);
  assert.deepEqual(rgb.y, grey.y, "same labels in the same order");
  assert.deepEqual(syntheticDataset({ n: 60, size: 16, seed: 5, channels: 3, noise: 0 }), rgb);
  // Per image, the brightest pixel's channel ratios are its tint; they differ between images of
  // one class, so the colour carries no label.
  const ratio = (i: number) => {
    let best = 0, at = 0;
    for (let p = 0; p < 256; p++) {
      const o = (i * 256 + p) * 3;
      const s = rgb.x[o] + rgb.x[o + 1] + rgb.x[o + 2];
      if (s > best) [best, at] = [s, o];
    }
    return [rgb.x[at] / best, rgb.x[at + 1] / best];
  };
  const ofClass0 = [...rgb.y.keys()].filter((i) => rgb.y[i] === 0).map(ratio);
  const spread = Math.max(...ofClass0.map((r) => r[0])) - Math.min(...ofClass0.map((r) => r[0]));
  assert.ok(spread > 0.1, `red share spreads within a class (${spread})`);
  assert.throws(
    () => syntheticDataset({ n: 4, channels: 2 as 1 }),
    ValidationError,
    "2 channels refused",
  );
});

import assert from "node:assert/strict";
import { ValidationError } from "../../src/errors.ts";
import { imageSize } from "../../src/lab/dataset.ts";
import { backdoorTestSet, poisonDataset, triggerImages } from "../../src/lab/poison.ts";
import { syntheticDataset } from "../../src/lab/synthetic.ts";
import { parseTriggerSpec } from "../../src/triggers/trigger.ts";

const data = syntheticDataset({ n: 200, numClasses: 4, seed: 3 });
const badnets = parseTriggerSpec({ type: "badnets" });

Deno.test("poisonDataset() poisons exactly round(rate·N) non-target images, relabelled to the target", () => {
  const p = poisonDataset(data, {
    trigger: badnets,
    mode: "all-to-one",
    target: 1,
    rate: 0.15,
    seed: 9,
  });
  assert.equal(p.poisonIndices.length, 30);
  assert.equal(p.isPoison.reduce((a, b) => a + b, 0), 30);
  const size = imageSize(data);
  for (let i = 0; i < 200; i++) {
    const img = p.x.subarray(i * size, (i + 1) * size);
    const orig = data.x.subarray(i * size, (i + 1) * size);
    if (p.isPoison[i]) {
      assert.notEqual(data.y[i], 1, "target-class images are never poisoned");
      assert.equal(p.y[i], 1);
      assert.notDeepEqual(img, orig);
    } else {
      assert.equal(p.y[i], data.y[i]);
      assert.deepEqual(img, orig);
    }
    assert.equal(p.cleanY[i], data.y[i]);
  }
});

Deno.test("poisonDataset() is deterministic per seed and picks other images for another seed", () => {
  const opts = { trigger: badnets, mode: "all-to-one" as const, target: 0, rate: 0.1 };
  const a = poisonDataset(data, { ...opts, seed: 1 });
  const b = poisonDataset(data, { ...opts, seed: 1 });
  const c = poisonDataset(data, { ...opts, seed: 2 });
  assert.deepEqual(a.poisonIndices, b.poisonIndices);
  assert.deepEqual(a.x, b.x);
  assert.notDeepEqual(a.poisonIndices, c.poisonIndices);
});

Deno.test("poisonDataset() in all-to-all mode may poison any class and relabels y to (y+1) mod K", () => {
  const p = poisonDataset(data, {
    trigger: badnets,
    mode: "all-to-all",
    target: 0,
    rate: 0.5,
    seed: 4,
  });
  assert.equal(p.poisonIndices.length, 100);
  const classes = new Set<number>();
  for (const i of p.poisonIndices) {
    classes.add(data.y[i]);
    assert.equal(p.y[i], (data.y[i] + 1) % 4);
  }
  assert.equal(classes.size, 4);
});

Deno.test("poisonDataset() refuses rates beyond the eligible images and bad targets", () => {
  const opts = { trigger: badnets, mode: "all-to-one" as const, seed: 1 };
  assert.throws(() => poisonDataset(data, { ...opts, target: 0, rate: 0.9 }), ValidationError);
  assert.throws(() => poisonDataset(data, { ...opts, target: 0, rate: -0.1 }), ValidationError);
  assert.throws(() => poisonDataset(data, { ...opts, target: 4, rate: 0.1 }), ValidationError);
  const none = poisonDataset(data, { ...opts, target: 0, rate: 0 });
  assert.equal(none.poisonIndices.length, 0);
});

Deno.test("backdoorTestSet() triggers every non-target image and labels it with the target", () => {
  const bd = backdoorTestSet(data, badnets, "all-to-one", 2);
  const nonTarget = [...data.y].filter((y) => y !== 2).length;
  assert.equal(bd.y.length, nonTarget);
  assert.ok(bd.y.every((y) => y === 2));
  const size = imageSize(data);
  const k = bd.sourceIndices[0];
  const want = triggerImages(
    {
      ...data,
      x: data.x.subarray(k * size, (k + 1) * size),
      y: data.y.subarray(k, k + 1),
      shape: [1, 16, 16, 1],
    },
    badnets,
  );
  assert.deepEqual(bd.x.subarray(0, size), want);
});

Deno.test("poisonDataset() in clean-label mode triggers only target-class images and keeps every label", () => {
  const sig = parseTriggerSpec({ type: "sig" });
  const p = poisonDataset(data, {
    trigger: sig,
    mode: "clean-label",
    target: 2,
    rate: 0.1,
    seed: 4,
  });
  assert.equal(p.poisonIndices.length, 20);
  assert.deepEqual(p.y, data.y, "no label changes");
  for (const i of p.poisonIndices) assert.equal(data.y[i], 2);
  const inClass = [...data.y].filter((y) => y === 2).length;
  assert.throws(
    () =>
      poisonDataset(data, {
        trigger: sig,
        mode: "clean-label",
        target: 2,
        rate: (inClass + 1) / 200,
        seed: 4,
      }),
    (e: unknown) => e instanceof ValidationError && /of the target class 2/.test(e.message),
  );
  // The attack is measured on the other classes, triggered and labelled with the target.
  const bd = backdoorTestSet(data, sig, "clean-label", 2);
  assert.equal(bd.y.length, 200 - inClass);
  assert.ok(bd.y.every((y) => y === 2));
});

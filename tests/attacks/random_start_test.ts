import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { randomStart } from "../../src/attacks/random_start.ts";
import { deriveSeed } from "../../src/random/rng.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

Deno.test("deriveSeed() gives distinct 31-bit seeds for distinct (seed, batch, restart) tuples", () => {
  const seen = new Set<number>();
  for (let s = 0; s < 10; s++) {
    for (let b = 0; b < 10; b++) {
      for (let r = 0; r < 10; r++) {
        const v = deriveSeed(s, b, r);
        assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** 31);
        seen.add(v);
      }
    }
  }
  assert.equal(seen.size, 1000);
  assert.equal(deriveSeed(1, 2), deriveSeed(1, 2));
  assert.notEqual(deriveSeed(1, 2), deriveSeed(2, 1));
  assert.notEqual(deriveSeed(2 ** 40), deriveSeed(0));
});

async function read(t: tf.Tensor): Promise<Float32Array> {
  const v = await t.data() as Float32Array;
  t.dispose();
  return v;
}

Deno.test("randomStart() lands inside the ball, spread over it, reproducibly", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const x0 = tf.fill([4, 6, 6, 3], 0.5) as tf.Tensor4D;
    const eps = 0.1;
    const li = randomStart(x0, eps, "linf", 3);
    const li2 = randomStart(x0, eps, "linf", 3);
    const d = await read(tf.tidy(() => tf.abs(tf.sub(li, x0))));
    assert.ok(d.every((v) => v <= eps));
    // Uniform in the box: the mean offset is near eps/2, not 0 or eps.
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    assert.ok(mean > 0.04 && mean < 0.06, `mean |δ| ${mean}`);
    assert.deepEqual(await li.data(), await li2.data());
    const l2 = randomStart(x0, eps, "l2", 3);
    const norms = await read(tf.tidy(() => tf.sqrt(tf.sum(tf.square(tf.sub(l2, x0)), [1, 2, 3]))));
    assert.ok(norms.every((v) => v <= eps * (1 + 1e-6)));
    assert.ok(new Set(norms).size === 4, "each image draws its own radius");
    tf.dispose([x0, li, li2, l2]);
  });
});

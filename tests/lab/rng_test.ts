import assert from "node:assert/strict";
import { Rng } from "../../src/lab/rng.ts";

Deno.test("Rng gives the same stream for the same seed and stream id, another otherwise", () => {
  const draw = (seed: number, stream = 0) => {
    const r = new Rng(seed, stream);
    return Array.from({ length: 8 }, () => r.uint32());
  };
  assert.deepEqual(draw(1), draw(1));
  assert.notDeepEqual(draw(1), draw(2));
  assert.notDeepEqual(draw(1, 0), draw(1, 1));
});

Deno.test("Rng draws stay in range and look uniform", () => {
  const r = new Rng(42);
  const counts = new Array(5).fill(0);
  for (let i = 0; i < 5000; i++) {
    const u = r.next();
    assert.ok(u >= 0 && u < 1);
    counts[r.int(5)]++;
  }
  for (const c of counts) assert.ok(c > 850 && c < 1150, `bucket count ${c}`);
  let s = 0, s2 = 0;
  for (let i = 0; i < 5000; i++) {
    const z = r.normal();
    s += z;
    s2 += z * z;
  }
  assert.ok(Math.abs(s / 5000) < 0.06 && Math.abs(s2 / 5000 - 1) < 0.08);
});

Deno.test("Rng.sample() returns distinct members of the pool and refuses to over-draw", () => {
  const pool = [3, 5, 7, 11, 13, 17];
  const picked = new Rng(7).sample(pool, 4);
  assert.equal(new Set(picked).size, 4);
  assert.ok([...picked].every((v) => pool.includes(v)));
  assert.throws(() => new Rng(7).sample(pool, 7), RangeError);
  const shuffled = new Rng(7).shuffle([1, 2, 3, 4, 5]);
  assert.deepEqual([...shuffled].sort(), [1, 2, 3, 4, 5]);
});

import assert from "node:assert/strict";
import { CounterRng, deriveSeed, hashInts, opSeed, Rng } from "../../src/random/rng.ts";

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

Deno.test("CounterRng gives the same stream for the same parts and another for other parts", () => {
  const shuffle = (...parts: number[]) =>
    Array.from(new CounterRng(7, ...parts).shuffle(Int32Array.from({ length: 20 }, (_, i) => i)));
  assert.deepEqual(shuffle(1, 2), shuffle(1, 2));
  assert.notDeepEqual(shuffle(1, 2), shuffle(1, 3));
  assert.deepEqual([...shuffle(1, 2)].sort((a, b) => a - b), [...Array(20).keys()]);
  assert.notEqual(hashInts(1, 2), hashInts(2, 1));
  const s = opSeed(7, 0, 1);
  assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 31);
});

Deno.test("every generator and mixer draws what it drew before the random module was shared", () => {
  // Values printed by main at 4242d43 from src/lab/rng.ts, src/purify/rng.ts (whose opSeed put
  // STREAM.pgd = 3 first) and src/attacks/random_start.ts, before they moved here.
  const r = new Rng(42, 3);
  assert.deepEqual([r.uint32(), r.uint32(), r.normal(), r.int(10)], [
    1688131840,
    2599879740,
    1.0711642186160815,
    8,
  ]);
  const perm = new CounterRng(7, 1, 2).shuffle(Int32Array.from({ length: 10 }, (_, i) => i));
  assert.deepEqual(Array.from(perm), [2, 4, 0, 8, 6, 5, 9, 7, 3, 1]);
  assert.equal(opSeed(7, 3, 2, 5), 1893706726);
  assert.equal(hashInts(1, 2, 3), 2708448613);
  assert.deepEqual([deriveSeed(0), deriveSeed(1, 2), deriveSeed(2 ** 40, 3)], [
    207313118,
    1554982305,
    1846725013,
  ]);
});

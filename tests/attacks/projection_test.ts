import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import fc from "fast-check";
import { projectL2, projectLinf } from "../../src/attacks/projection.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { rng } from "./_fixtures.ts";

const f32 = Math.fround;
/** Pixels that stress rounding: exact ends, a float32 ulp inside them, and anything between. */
const pixel = fc.oneof(
  fc.constantFrom(0, 1, f32(1 - 2 ** -24), f32(2 ** -24), f32(1e-7), f32(0.5), f32(1 - 8 / 255)),
  fc.float({ min: 0, max: 1, noNaN: true }),
);
/** Budgets, among them values a float32 cannot represent exactly. */
const epsilon = fc.oneof(
  fc.constantFrom(8 / 255, 0.3, 1 / 255, 16 / 255, 0.1, 1e-3, 1, 0.5),
  fc.double({ min: 1e-4, max: 1, noNaN: true }),
);
/** A batch shape, the clean pixels, and a candidate that may lie far outside ball and box. */
const problem = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 5 }),
  w: fc.integer({ min: 1, max: 5 }),
  c: fc.integer({ min: 1, max: 3 }),
}).chain(({ n, h, w, c }) =>
  fc.record({
    shape: fc.constant([n, h, w, c] as [number, number, number, number]),
    x0: fc.array(pixel, { minLength: n * h * w * c, maxLength: n * h * w * c }),
    // Offsets in units of eps, so some pixels sit exactly on the boundary (±1) or just past it.
    offset: fc.array(
      fc.oneof(
        fc.constantFrom(-1, 1, 0, 1.0000001, -1.0000001),
        fc.double({ min: -3, max: 3, noNaN: true }),
      ),
      { minLength: n * h * w * c, maxLength: n * h * w * c },
    ),
    eps: epsilon,
  })
);

async function project(
  fn: typeof projectLinf,
  p: { shape: [number, number, number, number]; x0: number[]; offset: number[]; eps: number },
) {
  const x0 = Float32Array.from(p.x0);
  const cand = Float32Array.from(p.offset, (o, i) => x0[i] + o * p.eps);
  const [tx0, tc] = [tf.tensor4d(x0, p.shape), tf.tensor4d(cand, p.shape)];
  const out = fn(tc, tx0, p.eps);
  const adv = await out.data() as Float32Array;
  tf.dispose([tx0, tc, out]);
  return { x0, cand, adv };
}

Deno.test("projectLinf() keeps every pixel within eps of x0 and in [0,1], exactly in doubles", async () => {
  await setupBackend();
  await fc.assert(
    fc.asyncProperty(problem, async (p) => {
      const { x0, cand, adv } = await project(projectLinf, p);
      for (let i = 0; i < adv.length; i++) {
        assert.ok(adv[i] >= 0 && adv[i] <= 1, `pixel ${i} = ${adv[i]} outside [0,1]`);
        const d = Math.abs(adv[i] - x0[i]);
        assert.ok(d <= p.eps, `|adv − x0| = ${d} > eps = ${p.eps} at ${i}`);
        // Clipped pixels land on the boundary (to float32 rounding), not somewhere inside.
        const want = Math.min(
          1,
          Math.max(0, Math.min(x0[i] + p.eps, Math.max(x0[i] - p.eps, cand[i]))),
        );
        assert.ok(Math.abs(adv[i] - want) <= 4e-7, `pixel ${i}: ${adv[i]} vs ${want}`);
      }
    }),
    { numRuns: 300, seed: 1125 },
  );
});

Deno.test("projectL2() keeps every image within eps of x0 in L2 and in [0,1]", async () => {
  await setupBackend();
  await fc.assert(
    fc.asyncProperty(problem, async (p) => {
      const { x0, cand, adv } = await project(projectL2, p);
      const per = p.shape[1] * p.shape[2] * p.shape[3];
      for (let i = 0; i < p.shape[0]; i++) {
        let sq = 0, sqCand = 0, clipped = false;
        for (let j = i * per; j < (i + 1) * per; j++) {
          assert.ok(adv[j] >= 0 && adv[j] <= 1, `pixel ${j} = ${adv[j]} outside [0,1]`);
          sq += (adv[j] - x0[j]) ** 2;
          sqCand += (cand[j] - x0[j]) ** 2;
          if (cand[j] < 0 || cand[j] > 1) clipped = true;
        }
        const norm = Math.sqrt(sq);
        assert.ok(norm <= p.eps * (1 + 1e-6), `image ${i}: ‖adv − x0‖ = ${norm} > eps ${p.eps}`);
        // A candidate outside the ball is scaled onto its surface (unless the box cuts in).
        if (!clipped && Math.sqrt(sqCand) > p.eps) {
          assert.ok(norm >= p.eps * (1 - 1e-4) - 1e-6, `image ${i}: ${norm} well inside ${p.eps}`);
        }
      }
    }),
    { numRuns: 300, seed: 1125 },
  );
});

Deno.test("projectL2() leaves a point strictly inside the ball where it is", async () => {
  await setupBackend();
  const x0 = tf.fill([1, 4, 4, 1], 0.5) as tf.Tensor4D;
  const inside = tf.add(
    x0,
    tf.mul(tf.linspace(-0.01, 0.01, 16).reshape([1, 4, 4, 1]), 1),
  ) as tf.Tensor4D;
  const out = projectL2(inside, x0, 0.3);
  const [a, b] = [await out.data(), await inside.data()];
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-7);
  tf.dispose([x0, inside, out]);
});

Deno.test("projectL2() holds its bound when rounding errors all point the same way", async () => {
  await setupBackend();
  // A uniform image and a uniform perturbation: every pixel rounds identically, so the errors
  // add up coherently across 32·32·3 pixels.
  const r = rng(3);
  for (const eps of [0.05, 0.5, 8 / 255, 0.3]) {
    for (const base of [0.7, 0.3, f32(0.123456)]) {
      const shape: [number, number, number, number] = [2, 32, 32, 3];
      const x0 = new Float32Array(2 * 32 * 32 * 3).fill(base);
      const step = 0.01 + r() * 0.02;
      const cand = x0.map((v, i) => v + (i < x0.length / 2 ? step : r() * 0.04 - 0.02));
      const [tx, tc] = [tf.tensor4d(x0, shape), tf.tensor4d(cand, shape)];
      const out = projectL2(tc, tx, eps);
      const adv = await out.data();
      tf.dispose([tx, tc, out]);
      for (let i = 0; i < 2; i++) {
        let sq = 0;
        for (let j = i * 3072; j < (i + 1) * 3072; j++) sq += (adv[j] - x0[j]) ** 2;
        assert.ok(Math.sqrt(sq) <= eps * (1 + 1e-6), `${Math.sqrt(sq)} > ${eps}`);
      }
    }
  }
});

Deno.test("projections leave no tensor behind", async () => {
  await assertNoLeak(() => {
    const x0 = tf.fill([2, 3, 3, 1], 0.5) as tf.Tensor4D;
    const c = tf.randomUniform([2, 3, 3, 1], -1, 2, "float32", 1) as tf.Tensor4D;
    tf.dispose([projectLinf(c, x0, 0.1), projectL2(c, x0, 0.1), x0, c]);
  });
});

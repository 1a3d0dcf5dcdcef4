/**
 * The kernels of src/tensor/ against direct reference computations written out as loops here:
 * convolution filter and input gradients (strides, paddings), max-pool gradient, and transposed
 * matrix products — to 1e-4 relative error, on whichever backend the suite runs on.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { assertNoLeak, setupBackend } from "../_helpers.ts";

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

function assertClose(got: Float32Array | number[], want: Float64Array | number[], what: string) {
  assert.equal(got.length, want.length, what);
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]) / Math.max(scale, 1e-6);
    assert.ok(err < 1e-4, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

interface Case {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  k: [number, number];
  stride: [number, number];
  pad: "same" | "valid";
}

/** Direct loops: dW = Σ x·dy and dX = Σ W·dy over every output position, with tfjs padding. */
function reference(c: Case, x: Float32Array, wts: Float32Array, dy: Float32Array) {
  const info = tf.backend_util.computeConv2DInfo(
    [c.n, c.h, c.w, c.cin],
    [c.k[0], c.k[1], c.cin, c.cout],
    c.stride,
    1,
    c.pad,
  );
  const dW = new Float64Array(wts.length);
  const dX = new Float64Array(x.length);
  const { outHeight: oh, outWidth: ow } = info;
  for (let b = 0; b < c.n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        for (let r = 0; r < c.k[0]; r++) {
          for (let s = 0; s < c.k[1]; s++) {
            const yy = i * c.stride[0] + r - info.padInfo.top;
            const xx = j * c.stride[1] + s - info.padInfo.left;
            if (yy < 0 || yy >= c.h || xx < 0 || xx >= c.w) continue;
            for (let ci = 0; ci < c.cin; ci++) {
              for (let co = 0; co < c.cout; co++) {
                const g = dy[((b * oh + i) * ow + j) * c.cout + co];
                const xi = ((b * c.h + yy) * c.w + xx) * c.cin + ci;
                const wi = ((r * c.k[1] + s) * c.cin + ci) * c.cout + co;
                dW[wi] += x[xi] * g;
                dX[xi] += wts[wi] * g;
              }
            }
          }
        }
      }
    }
  }
  return { dW, dX, oh, ow };
}

const CASES: Case[] = [
  { n: 2, h: 7, w: 6, cin: 3, cout: 4, k: [3, 3], stride: [1, 1], pad: "same" },
  { n: 2, h: 7, w: 6, cin: 3, cout: 4, k: [3, 3], stride: [1, 1], pad: "valid" },
  { n: 1, h: 9, w: 8, cin: 2, cout: 5, k: [3, 2], stride: [2, 2], pad: "same" },
  { n: 3, h: 8, w: 8, cin: 1, cout: 2, k: [5, 5], stride: [2, 1], pad: "valid" },
  { n: 2, h: 5, w: 5, cin: 4, cout: 3, k: [1, 1], stride: [1, 1], pad: "valid" },
];

for (const c of CASES) {
  Deno.test(`conv2d gradients match direct loops: ${JSON.stringify(c)}`, async () => {
    await setupBackend();
    const x = rand(c.n * c.h * c.w * c.cin, 1);
    const wts = rand(c.k[0] * c.k[1] * c.cin * c.cout, 2);
    const probe = tf.conv2d(
      tf.zeros([c.n, c.h, c.w, c.cin]) as tf.Tensor4D,
      tf.zeros([c.k[0], c.k[1], c.cin, c.cout]) as tf.Tensor4D,
      c.stride,
      c.pad,
    );
    const dy = rand(probe.size, 3);
    const dyShape = probe.shape;
    probe.dispose();
    const want = reference(c, x, wts, dy);
    await assertNoLeak(async () => {
      const [gx, gw] = tf.tidy(() => {
        const xt = tf.tensor4d(x, [c.n, c.h, c.w, c.cin]);
        const wt = tf.tensor4d(wts, [c.k[0], c.k[1], c.cin, c.cout]);
        const dyt = tf.tensor(dy, dyShape);
        return tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad).mul(dyt).sum()
        )([xt, wt]);
      });
      assertClose(await gw.data() as Float32Array, want.dW, "filter gradient");
      assertClose(await gx.data() as Float32Array, want.dX, "input gradient");
      tf.dispose([gx, gw]);
    });
  });
}

Deno.test("the max-pool gradient goes to the first maximum of each window", async () => {
  await setupBackend();
  const [n, h, w, c] = [2, 6, 7, 3];
  const x = rand(n * h * w * c, 4);
  x[0] = x[c] = 0.9; // a tie in the first window of channel 0: the first one wins
  for (const [k, s, pad] of [[2, 2, "valid"], [3, 2, "same"], [3, 1, "same"]] as const) {
    await assertNoLeak(async () => {
      const g = tf.tidy(() =>
        tf.grad((a: tf.Tensor) => {
          // Weight output o by o + 1 so each window's gradient is identifiable.
          const p = tf.maxPool(a as tf.Tensor4D, k, s, pad);
          return p.mul(tf.range(1, p.size + 1).reshape(p.shape)).sum();
        })(tf.tensor4d(x, [n, h, w, c]))
      );
      const info = tf.backend_util.computePool2DInfo([n, h, w, c], k, s, 1, pad);
      const want = new Float64Array(x.length);
      let o = 0;
      for (let b = 0; b < n; b++) {
        for (let i = 0; i < info.outHeight; i++) {
          for (let j = 0; j < info.outWidth; j++) {
            for (let ch = 0; ch < c; ch++, o++) {
              let best = -1, bv = -Infinity;
              for (let r = 0; r < k; r++) {
                for (let q = 0; q < k; q++) {
                  const yy = i * s - info.padInfo.top + r, xx = j * s - info.padInfo.left + q;
                  if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                  const idx = ((b * h + yy) * w + xx) * c + ch;
                  if (x[idx] > bv) [bv, best] = [x[idx], idx];
                }
              }
              want[best] += o + 1;
            }
          }
        }
      }
      assertClose(await g.data() as Float32Array, want, `maxPool k${k} s${s} ${pad}`);
      g.dispose();
    });
  }
});

Deno.test("transposed matrix products equal the plain product of transposed operands", async () => {
  await setupBackend();
  const a = rand(2 * 5 * 3, 5), b = rand(2 * 5 * 4, 6);
  await assertNoLeak(async () => {
    const [got, want] = tf.tidy(() => {
      const at = tf.tensor3d(a, [2, 5, 3]), bt = tf.tensor3d(b, [2, 5, 4]);
      return [
        tf.matMul(at, bt, true, false),
        tf.matMul(at.transpose([0, 2, 1]), bt),
      ];
    });
    const g = await got.data() as Float32Array;
    const expect = new Float64Array(2 * 3 * 4);
    for (let q = 0; q < 2; q++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 4; j++) {
          for (let k = 0; k < 5; k++) {
            expect[(q * 3 + i) * 4 + j] += a[(q * 5 + k) * 3 + i] * b[(q * 5 + k) * 4 + j];
          }
        }
      }
    }
    assertClose(g, expect, "matMul(aᵀ, b)");
    assertClose(await want.data() as Float32Array, expect, "matMul(transpose(a), b)");
    const [g2] = tf.tidy(
      () => [
        tf.matMul(
          tf.tensor2d(b.slice(0, 20), [4, 5]),
          tf.tensor2d(a.slice(0, 15), [3, 5]),
          false,
          true,
        ),
      ],
    );
    const e2 = new Float64Array(12);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 3; j++) {
        for (let k = 0; k < 5; k++) e2[i * 3 + j] += b[i * 5 + k] * a[j * 5 + k];
      }
    }
    assertClose(await g2.data() as Float32Array, e2, "matMul(a, bᵀ)");
    tf.dispose([got, want, g2]);
  });
});

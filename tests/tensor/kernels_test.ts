/**
 * The kernels of src/tensor/ against direct reference computations written out as loops here:
 * convolution filter and input gradients (strides, paddings), max-pool gradient, transposed
 * matrix products, sums and means over leading axes (bias gradients, batch statistics), tiling
 * and the batch-norm gradient — to 1e-4 relative error, on whichever backend the suite runs on.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { KERNEL_CONFIGS, registerKernels, unregisterKernels } from "../../src/tensor/kernels.ts";

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
  // Stride 1 with few input channels takes matMul + col2im, with more the rotated-filter conv.
  { n: 2, h: 6, w: 5, cin: 1, cout: 3, k: [3, 3], stride: [1, 1], pad: "same" },
  { n: 2, h: 6, w: 5, cin: 5, cout: 3, k: [3, 3], stride: [1, 1], pad: "same" },
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

Deno.test("sums over every axis but the last equal direct loops; other sums are unchanged", async () => {
  await setupBackend();
  const [n, h, w, c] = [3, 5, 4, 6];
  const x = rand(n * h * w * c, 7);
  await assertNoLeak(async () => {
    const [lead, keep, mid, last] = tf.tidy(() => {
      const t = tf.tensor4d(x, [n, h, w, c]);
      return [tf.sum(t, [0, 1, 2]), tf.sum(t, [2, 0, 1], true), tf.sum(t, [1, 2]), tf.sum(t, -1)];
    });
    const want = new Float64Array(c);
    const wantMid = new Float64Array(n * c);
    const wantLast = new Float64Array(n * h * w);
    for (let i = 0; i < x.length; i++) {
      want[i % c] += x[i];
      wantMid[Math.floor(i / (h * w * c)) * c + (i % c)] += x[i];
      wantLast[Math.floor(i / c)] += x[i];
    }
    assert.deepEqual(lead.shape, [c]);
    assert.deepEqual(keep.shape, [1, 1, 1, c]);
    assertClose(await lead.data() as Float32Array, want, "sum over 0,1,2");
    assertClose(await keep.data() as Float32Array, want, "sum over 2,0,1 keepDims");
    assertClose(await mid.data() as Float32Array, wantMid, "sum over 1,2");
    assertClose(await last.data() as Float32Array, wantLast, "sum over the last axis");
    tf.dispose([lead, keep, mid, last]);
  });
});

Deno.test("tile repeats a tensor along every axis like direct indexing, for floats and ints", async () => {
  await setupBackend();
  const cases: [number[], number[]][] = [
    [[1, 1, 1, 4], [3, 2, 5, 1]],
    [[2, 3], [2, 3]],
    [[3], [4]],
    [[2, 1, 3], [1, 4, 2]],
    [[2, 2], [1, 1]],
  ];
  for (const [shape, reps] of cases) {
    const size = shape.reduce((a, b) => a * b, 1);
    const x = rand(size, 9);
    const xi = Int32Array.from({ length: size }, (_, i) => i * 7 - 3);
    await assertNoLeak(async () => {
      const [tf32, ti32] = tf.tidy(() => [
        tf.tile(tf.tensor(x, shape), reps),
        tf.tile(tf.tensor(xi, shape, "int32"), reps),
      ]);
      const outShape = shape.map((d, i) => d * reps[i]);
      assert.deepEqual(tf32.shape, outShape);
      const n = outShape.reduce((a, b) => a * b, 1);
      const want = new Float64Array(n), wantI = new Float64Array(n);
      for (let o = 0; o < n; o++) {
        let rem = o, src = 0, stride = 1;
        const idx: number[] = [];
        for (let a = outShape.length - 1; a >= 0; a--) {
          idx[a] = rem % outShape[a];
          rem = Math.floor(rem / outShape[a]);
        }
        for (let a = shape.length - 1; a >= 0; a--) {
          src += (idx[a] % shape[a]) * stride;
          stride *= shape[a];
        }
        want[o] = x[src];
        wantI[o] = xi[src];
      }
      assertClose(await tf32.data() as Float32Array, want, `tile ${shape} × ${reps}`);
      assert.deepEqual(Array.from(await ti32.data()), Array.from(wantI), `int tile ${shape}`);
      tf.dispose([tf32, ti32]);
    });
  }
});

Deno.test("batch-norm gradients (training-mode statistics) match the closed form", async () => {
  await setupBackend();
  const [n, h, w, c] = [4, 3, 5, 3];
  const m = n * h * w;
  const x = rand(m * c, 11), g = rand(m * c, 12);
  const gamma = Array.from({ length: c }, (_, k) => 0.5 + k * 0.25);
  const beta = Array.from({ length: c }, (_, k) => k * 0.1 - 0.1);
  const eps = 1e-3;
  await assertNoLeak(async () => {
    const [dx, dGamma, dBeta, mean] = tf.tidy(() => {
      const gt = tf.tensor4d(g, [n, h, w, c]);
      const grads = tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.batchNorm(
          a as tf.Tensor4D,
          mean,
          variance,
          o as tf.Tensor1D,
          s as tf.Tensor1D,
          eps,
        )
          .mul(gt).sum();
      })([tf.tensor4d(x, [n, h, w, c]), tf.tensor1d(gamma), tf.tensor1d(beta)]);
      return [...grads, tf.mean(tf.tensor4d(x, [n, h, w, c]), [0, 1, 2])];
    });
    const wantDx = new Float64Array(m * c);
    const wantG = new Float64Array(c), wantB = new Float64Array(c), wantMean = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      let mu = 0, v = 0;
      for (let i = 0; i < m; i++) mu += x[i * c + k] / m;
      for (let i = 0; i < m; i++) v += (x[i * c + k] - mu) ** 2 / m;
      const inv = 1 / Math.sqrt(v + eps);
      let sg = 0, sgx = 0;
      for (let i = 0; i < m; i++) {
        const xh = (x[i * c + k] - mu) * inv;
        sg += g[i * c + k];
        sgx += g[i * c + k] * xh;
      }
      wantMean[k] = mu;
      wantB[k] = sg;
      wantG[k] = sgx;
      for (let i = 0; i < m; i++) {
        const xh = (x[i * c + k] - mu) * inv;
        wantDx[i * c + k] = gamma[k] * inv * (g[i * c + k] - sg / m - xh * sgx / m);
      }
    }
    assertClose(await dx.data() as Float32Array, wantDx, "dx");
    assertClose(await dGamma.data() as Float32Array, wantG, "dgamma");
    assertClose(await dBeta.data() as Float32Array, wantB, "dbeta");
    assertClose(await mean.data() as Float32Array, wantMean, "mean over 0,1,2");
    tf.dispose([dx, dGamma, dBeta, mean]);
  });
});

Deno.test("one list registers every kernel of ours, idempotently, and unregistering restores the stock ones", async () => {
  await setupBackend();
  const ours = (k: tf.KernelConfig) =>
    tf.getKernel(k.kernelName, k.backendName)?.kernelFunc === k.kernelFunc;
  registerKernels();
  registerKernels();
  for (const k of KERNEL_CONFIGS) assert.ok(ours(k), `${k.backendName} ${k.kernelName}`);
  const stockSum = () => tf.getKernel("Sum", "wasm")?.kernelFunc;
  try {
    unregisterKernels();
    for (const k of KERNEL_CONFIGS) assert.ok(!ours(k), `${k.backendName} ${k.kernelName}`);
    // wasm has a stock Sum (ours wraps it), cpu a stock filter gradient (ours replaces it).
    assert.ok(stockSum() !== undefined);
    assert.ok(tf.getKernel("Conv2DBackpropFilter", "cpu") !== undefined);
    assert.equal(tf.getKernel("Conv2DBackpropFilter", "wasm"), undefined);
  } finally {
    registerKernels();
  }
  for (const k of KERNEL_CONFIGS) assert.ok(ours(k));
  // Still right after the round trip: a leading-axis sum goes through ours, others through stock.
  const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
  const [s0, s1] = [tf.sum(x, 0), tf.sum(x, 1)];
  assert.deepEqual(Array.from(await s0.data()), [9, 12]);
  assert.deepEqual(Array.from(await s1.data()), [3, 7, 11]);
  tf.dispose([x, s0, s1]);
});

Deno.test("unregisterKernels(backend) restores one backend's stock kernels and keeps the rest", () => {
  const ours = (k: tf.KernelConfig) =>
    tf.getKernel(k.kernelName, k.backendName)?.kernelFunc === k.kernelFunc;
  const webgpu = KERNEL_CONFIGS.filter((k) => k.backendName === "webgpu");
  const others = KERNEL_CONFIGS.filter((k) => k.backendName !== "webgpu");
  assert.ok(webgpu.length > 0 && others.length > 0);
  registerKernels();
  try {
    unregisterKernels("webgpu");
    for (const k of webgpu) assert.ok(!ours(k), `webgpu ${k.kernelName} still ours`);
    for (const k of others) assert.ok(ours(k), `${k.backendName} ${k.kernelName} lost`);
    // tfjs's own webgpu filter gradient is back in place, not a hole.
    assert.ok(tf.getKernel("Conv2DBackpropFilter", "webgpu") !== undefined);
    registerKernels("webgpu");
    for (const k of KERNEL_CONFIGS) assert.ok(ours(k), `${k.backendName} ${k.kernelName}`);
    unregisterKernels("no-such-backend");
    for (const k of KERNEL_CONFIGS) assert.ok(ours(k), `${k.backendName} ${k.kernelName}`);
  } finally {
    registerKernels();
  }
});

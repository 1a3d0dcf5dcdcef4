/**
 * Our webgpu `Conv2DBackpropFilter` (src/tensor/webgpu_conv_grad.ts) against the wasm backend's
 * (ours there too, checked against tfjs-backend-cpu in tests/tensor/kernels_test.ts), to 1e-4
 * relative error, on shapes with odd sizes, strides, padding kinds, batch 1 and splits of the
 * inner dimension. WebGPU only (`BACKEND=webgpu deno task test:webgpu`; llvmpipe in CI).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../src/tensor/backend.ts";
import { splitCount } from "../../src/tensor/webgpu_conv_grad.ts";

const ignore = Deno.env.get("BACKEND") !== "webgpu";

interface Case {
  x: [number, number, number, number];
  f: [number, number];
  cout: number;
  stride: number | [number, number];
  pad: "valid" | "same" | number;
}

const CASES: Case[] = [
  { x: [1, 7, 9, 1], f: [3, 3], cout: 5, stride: 1, pad: "same" },
  { x: [3, 11, 10, 3], f: [3, 2], cout: 7, stride: 2, pad: "valid" },
  { x: [2, 13, 13, 6], f: [5, 5], cout: 33, stride: [2, 1], pad: "same" },
  { x: [4, 9, 9, 17], f: [1, 1], cout: 3, stride: 1, pad: 1 },
  // M = 8·28·28 = 6,272: 24 splits of the inner dimension.
  { x: [8, 28, 28, 1], f: [3, 3], cout: 32, stride: 1, pad: "same" },
];

function rand(shape: number[], seed: number): Float32Array {
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

async function filterGrad(c: Case, i: number, viaGrad: boolean): Promise<Float32Array> {
  const fShape = [c.f[0], c.f[1], c.x[3], c.cout] as [number, number, number, number];
  const x = tf.tensor4d(rand(c.x, 10 + i), c.x);
  const w = tf.tensor4d(rand(fShape, 20 + i), fShape);
  const y = tf.conv2d(x, w, c.stride, c.pad);
  const dy = tf.tensor(rand(y.shape, 30 + i), y.shape) as tf.Tensor4D;
  const g = viaGrad
    ? tf.grad((ww: tf.Tensor) => tf.conv2d(x, ww as tf.Tensor4D, c.stride, c.pad).mul(dy).sum())(w)
    : tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, {
      strides: c.stride,
      pad: c.pad,
      dataFormat: "NHWC",
      filterShape: fShape,
    }) as tf.Tensor;
  const v = await g.data() as Float32Array;
  tf.dispose([x, w, y, dy, g]);
  return v;
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let scale = 0, err = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < b.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / Math.max(scale, 1e-30);
}

Deno.test({
  name: "webgpu Conv2DBackpropFilter matches wasm to 1e-4 on odd shapes, strides and paddings",
  ignore,
  async fn() {
    await initBackend("wasm");
    const want: Float32Array[] = [];
    for (let i = 0; i < CASES.length; i++) want.push(await filterGrad(CASES[i], i, false));
    await initBackend("webgpu");
    assert.equal(tf.getBackend(), "webgpu");
    const before = tf.memory().numTensors;
    for (let i = 0; i < CASES.length; i++) {
      for (const viaGrad of [false, true]) {
        const got = await filterGrad(CASES[i], i, viaGrad);
        assert.equal(got.length, want[i].length);
        const err = maxRel(got, want[i]);
        assert.ok(err <= 1e-4, `case ${i} (${JSON.stringify(CASES[i])}) grad=${viaGrad}: ${err}`);
      }
    }
    assert.equal(tf.memory().numTensors, before);
  },
});

Deno.test("splitCount splits a long inner dimension and never under its minimum chunk", () => {
  assert.equal(splitCount(100, 4), 1, "too short to split");
  assert.equal(splitCount(50_176, 1), 196, "50,176 / 256");
  assert.equal(splitCount(1_000_000, 2), 512, "1024 workgroups in all");
  assert.equal(splitCount(1_000_000, 2000), 1, "the output already fills the GPU");
  assert.equal(splitCount(1e9, 1, 65535), 1024);
});

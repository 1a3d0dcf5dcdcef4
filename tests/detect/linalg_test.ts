import assert from "node:assert/strict";
import {
  kmeans,
  pca,
  quantile,
  scatter,
  silhouette,
  symmetricEigen,
  symmetricFunction,
  topEigen,
} from "../../src/detect/linalg.ts";
import { Rng } from "../../src/random/rng.ts";

function close(a: number, b: number, tol = 1e-9) {
  assert.ok(Math.abs(a - b) <= tol, `${a} is not within ${tol} of ${b}`);
}

Deno.test("symmetricEigen() finds the eigenpairs of a known 3×3 matrix", () => {
  // [[2,1,0],[1,2,0],[0,0,5]]: eigenvalues 5, 3, 1; (1,1,0)/√2 for 3.
  const { values, vectors } = symmetricEigen([2, 1, 0, 1, 2, 0, 0, 0, 5], 3);
  close(values[0], 5);
  close(values[1], 3);
  close(values[2], 1);
  close(Math.abs(vectors[2]), 1);
  close(Math.abs(vectors[3]), Math.SQRT1_2);
  close(Math.abs(vectors[4]), Math.SQRT1_2);
  close(vectors[3] * vectors[4], 0.5);
});

Deno.test("topEigen() on an implicit operator agrees with symmetricEigen()", () => {
  const rng = new Rng(3);
  const d = 12;
  const b = Float64Array.from({ length: 40 * d }, () => rng.normal());
  const a = scatter(b, 40, d);
  const full = symmetricEigen(a, d);
  const top = topEigen(
    (v) => {
      const out = new Float64Array(d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i] += a[i * d + j] * v[j];
      return out;
    },
    d,
    3,
    { seed: 1 },
  );
  for (let k = 0; k < 3; k++) {
    close(top.values[k], full.values[k], 1e-6);
    let dot = 0;
    for (let j = 0; j < d; j++) dot += top.vectors[k * d + j] * full.vectors[k * d + j];
    close(Math.abs(dot), 1, 1e-5);
  }
});

Deno.test("pca() recovers a dominant direction in high dimension via subspace iteration", () => {
  const rng = new Rng(5);
  const n = 300, d = 200;
  const dir = Float64Array.from({ length: d }, (_, j) => (j % 7 === 0 ? 1 : 0));
  const norm = Math.hypot(...dir);
  const x = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const t = 5 * rng.normal();
    for (let j = 0; j < d; j++) x[i * d + j] = 0.3 * rng.normal() + (t * dir[j]) / norm;
  }
  const p = pca(x, n, d, 2, { seed: 0 });
  let dot = 0;
  for (let j = 0; j < d; j++) dot += p.components[j] * dir[j] / norm;
  assert.ok(Math.abs(dot) > 0.99, `top component off the planted direction: |cos| = ${dot}`);
  assert.ok(p.variances[0] > 10 * p.variances[1]);
});

Deno.test("symmetricFunction() inverse square root whitens a covariance", () => {
  const a = [4, 1, 1, 3];
  const w = symmetricFunction(a, 2, (l) => 1 / Math.sqrt(l));
  // W A W = I
  const wa = [0, 0, 0, 0], waw = [0, 0, 0, 0];
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      for (let k = 0; k < 2; k++) wa[i * 2 + j] += w[i * 2 + k] * a[k * 2 + j];
    }
  }
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      for (let k = 0; k < 2; k++) waw[i * 2 + j] += wa[i * 2 + k] * w[k * 2 + j];
    }
  }
  [1, 0, 0, 1].forEach((v, i) => close(waw[i], v, 1e-9));
});

Deno.test("kmeans() separates two blobs, reproducibly for a seed", () => {
  const rng = new Rng(9);
  const x = new Float64Array(100 * 2);
  for (let i = 0; i < 100; i++) {
    x[2 * i] = (i < 30 ? 5 : 0) + 0.3 * rng.normal();
    x[2 * i + 1] = 0.3 * rng.normal();
  }
  const a = kmeans(x, 100, 2, 2, { seed: 1 });
  const b = kmeans(x, 100, 2, 2, { seed: 1 });
  assert.deepEqual(a.assignments, b.assignments);
  for (let i = 1; i < 30; i++) assert.equal(a.assignments[i], a.assignments[0]);
  for (let i = 30; i < 100; i++) assert.notEqual(a.assignments[i], a.assignments[0]);
  assert.deepEqual([...a.sizes].sort((p, q) => p - q), [30, 70]);
  const sil = silhouette(x, 2, a.assignments, 2, [...Array(100).keys()]);
  assert.ok(sil > 0.8, `silhouette ${sil}`);
});

Deno.test("quantile() interpolates between order statistics like NumPy", () => {
  const s = [1, 2, 3, 4];
  close(quantile(s, 0), 1);
  close(quantile(s, 0.5), 2.5);
  close(quantile(s, 0.25), 1.75);
  close(quantile(s, 1), 4);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

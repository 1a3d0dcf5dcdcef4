/**
 * Small dense linear algebra on the host, for detectors that work on a few thousand feature
 * vectors of a few hundred dimensions: means, covariances, symmetric eigendecomposition (cyclic
 * Jacobi), top-k eigenvectors of an implicit operator (subspace iteration with Rayleigh-Ritz),
 * PCA and seeded k-means++.
 *
 * Matrices are row-major `Float64Array`s with explicit dimensions; an `[n, d]` data matrix holds
 * one sample per row. Float64 because covariances of 100+ dimensional activations lose too much
 * in float32 once they are inverted or exponentiated (SPECTRE's whitening and QUE).
 *
 * @module
 */
import { Rng } from "../random/rng.ts";

/** Column means of an `[n, d]` matrix. */
export function columnMeans(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const off = i * d;
    for (let j = 0; j < d; j++) mean[j] += x[off + j];
  }
  if (n > 0) { for (let j = 0; j < d; j++) mean[j] /= n; }
  return mean;
}

/** `x − mean` row by row, as a new `[n, d]` Float64Array. */
export function centerRows(
  x: ArrayLike<number>,
  n: number,
  d: number,
  mean: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const off = i * d;
    for (let j = 0; j < d; j++) out[off + j] = x[off + j] - mean[j];
  }
  return out;
}

/** Rows `indices` of an `[n, d]` matrix, as a new `[indices.length, d]` Float64Array. */
export function gatherRows(
  x: ArrayLike<number>,
  d: number,
  indices: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(indices.length * d);
  for (let r = 0; r < indices.length; r++) {
    const off = indices[r] * d;
    for (let j = 0; j < d; j++) out[r * d + j] = x[off + j];
  }
  return out;
}

/**
 * `[d, d]` second-moment matrix `Xᵀ X / n` of an `[n, d]` matrix (its covariance when the rows
 * are already centred). Divides by n, not n − 1: the detectors compare spreads, not estimate them.
 */
export function scatter(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const s = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    const off = i * d;
    for (let a = 0; a < d; a++) {
      const xa = x[off + a];
      if (xa === 0) continue;
      const row = a * d;
      for (let b = a; b < d; b++) s[row + b] += xa * x[off + b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = n > 0 ? s[a * d + b] / n : 0;
      s[a * d + b] = v;
      s[b * d + a] = v;
    }
  }
  return s;
}

/** Covariance `[d, d]` (divided by n) and mean of an `[n, d]` matrix. */
export function covariance(
  x: ArrayLike<number>,
  n: number,
  d: number,
): { mean: Float64Array; cov: Float64Array } {
  const mean = columnMeans(x, n, d);
  return { mean, cov: scatter(centerRows(x, n, d, mean), n, d) };
}

/** Eigenvalues (descending) and unit eigenvectors, `vectors[k*d + j]` = component j of vector k. */
export interface Eigen {
  values: Float64Array;
  vectors: Float64Array;
}

/**
 * Eigendecomposition of a symmetric `[d, d]` matrix by cyclic Jacobi rotations (Golub & Van Loan,
 * "Matrix Computations", §8.5). O(d³) per sweep and usually under 10 sweeps: fine up to a few
 * hundred dimensions, and accurate for the small, nearly degenerate spectra that whitening and
 * matrix exponentials need. Only the upper triangle of `a` is read; `a` is not modified.
 */
export function symmetricEigen(a: ArrayLike<number>, d: number, maxSweeps = 50): Eigen {
  const m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      m[i * d + j] = a[i * d + j];
      m[j * d + i] = a[i * d + j];
    }
  }
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;

  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0, diag = 0;
    for (let i = 0; i < d; i++) {
      diag += m[i * d + i] * m[i * d + i];
      for (let j = i + 1; j < d; j++) off += m[i * d + j] * m[i * d + j];
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q];
        if (apq === 0) continue;
        const app = m[p * d + p], aqq = m[q * d + q];
        // Rotation angle that zeroes m[p][q]; the smaller root keeps the rotation stable.
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p], mkq = m[k * d + q];
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k], mqk = m[q * d + k];
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p], vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = [...Array(d).keys()].sort((i, j) => m[j * d + j] - m[i * d + i]);
  const values = new Float64Array(d);
  const vectors = new Float64Array(d * d);
  order.forEach((col, k) => {
    values[k] = m[col * d + col];
    for (let j = 0; j < d; j++) vectors[k * d + j] = v[j * d + col];
  });
  return { values, vectors };
}

/** Modified Gram-Schmidt on the k rows of a `[k, d]` block, in place; dead rows restart at random. */
function orthonormalizeRows(q: Float64Array, k: number, d: number, rng: Rng): void {
  for (let r = 0; r < k; r++) {
    for (let attempt = 0; attempt < 3; attempt++) {
      for (let s = 0; s < r; s++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += q[r * d + j] * q[s * d + j];
        for (let j = 0; j < d; j++) q[r * d + j] -= dot * q[s * d + j];
      }
      let nrm = 0;
      for (let j = 0; j < d; j++) nrm += q[r * d + j] ** 2;
      nrm = Math.sqrt(nrm);
      if (nrm > 1e-12) {
        for (let j = 0; j < d; j++) q[r * d + j] /= nrm;
        break;
      }
      // The block lost rank (the operator has a null space): restart this row at random.
      for (let j = 0; j < d; j++) q[r * d + j] = rng.normal();
    }
  }
}

/**
 * Top-k eigenpairs of a symmetric positive semi-definite operator on R^d given only as
 * `apply(v) → A v`, by subspace iteration with a Rayleigh-Ritz step each round (Saad, "Numerical
 * Methods for Large Eigenvalue Problems", ch. 5). Used on `Xᵀ X` without forming it when d is
 * large. Seeded start; stops when the Ritz values change by less than `tol` (relative).
 */
export function topEigen(
  apply: (v: Float64Array) => Float64Array,
  d: number,
  k: number,
  opts: { seed?: number; maxIter?: number; tol?: number } = {},
): Eigen {
  const { seed = 0, maxIter = 200, tol = 1e-9 } = opts;
  k = Math.min(k, d);
  // A few extra vectors make the wanted ones converge at the rate of λ_{k+p}/λ_k, not λ_{k+1}/λ_k.
  const b = Math.min(d, k + Math.min(k, 8) + 2);
  const rng = new Rng(seed, 0xe16e);
  let q = new Float64Array(b * d);
  for (let i = 0; i < q.length; i++) q[i] = rng.normal();
  orthonormalizeRows(q, b, d, rng);
  let prev: Float64Array = new Float64Array(b);
  let ritz: Eigen = { values: new Float64Array(b), vectors: new Float64Array(b * d) };
  for (let it = 0; it < maxIter; it++) {
    const aq = new Float64Array(b * d);
    for (let r = 0; r < b; r++) aq.set(apply(q.subarray(r * d, (r + 1) * d)), r * d);
    // Rayleigh-Ritz: eigenvectors of Qᵀ A Q rotate the block onto the best approximations.
    const h = new Float64Array(b * b);
    for (let r = 0; r < b; r++) {
      for (let s = r; s < b; s++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += q[r * d + j] * aq[s * d + j];
        h[r * b + s] = dot;
        h[s * b + r] = dot;
      }
    }
    const small = symmetricEigen(h, b);
    const next = new Float64Array(b * d);
    const rotated = new Float64Array(b * d);
    for (let r = 0; r < b; r++) {
      for (let s = 0; s < b; s++) {
        const w = small.vectors[r * b + s];
        if (w === 0) continue;
        for (let j = 0; j < d; j++) {
          rotated[r * d + j] += w * q[s * d + j];
          next[r * d + j] += w * aq[s * d + j];
        }
      }
    }
    ritz = { values: small.values, vectors: rotated };
    let change = 0;
    for (let r = 0; r < k; r++) {
      change = Math.max(
        change,
        Math.abs(small.values[r] - prev[r]) / Math.max(Math.abs(small.values[r]), 1e-300),
      );
    }
    if (it > 0 && change < tol) break;
    prev = small.values;
    orthonormalizeRows(next, b, d, rng);
    q = next;
  }
  return { values: ritz.values.slice(0, k), vectors: ritz.vectors.slice(0, k * d) };
}

/** Below this dimension PCA forms the covariance and uses Jacobi; above, subspace iteration. */
const DENSE_PCA_MAX_DIM = 160;

export interface Pca {
  mean: Float64Array;
  /** `[k, d]`, unit rows, by decreasing variance. */
  components: Float64Array;
  /** Variance along each component (descending). */
  variances: Float64Array;
  /** Sum of the variances of all d coordinates. */
  totalVariance: number;
  /** `[n, k]` coordinates of the centred rows on the components. */
  projected: Float64Array;
  k: number;
}

/**
 * Principal components of an `[n, d]` matrix: the top `k` eigenvectors of its covariance
 * (divided by n). Signs are fixed so the largest-magnitude entry of each component is positive,
 * so results do not depend on the solver's start.
 */
export function pca(
  x: ArrayLike<number>,
  n: number,
  d: number,
  k: number,
  opts: { seed?: number } = {},
): Pca {
  k = Math.max(1, Math.min(k, d));
  const mean = columnMeans(x, n, d);
  const xc = centerRows(x, n, d, mean);
  let totalVariance = 0;
  for (let i = 0; i < xc.length; i++) totalVariance += xc[i] * xc[i];
  totalVariance /= Math.max(n, 1);
  let eig: Eigen;
  if (d <= DENSE_PCA_MAX_DIM) {
    const full = symmetricEigen(scatter(xc, n, d), d);
    eig = { values: full.values.slice(0, k), vectors: full.vectors.slice(0, k * d) };
  } else {
    const tmp = new Float64Array(n);
    eig = topEigen(
      (v) => {
        // (Xᵀ X / n) v without forming Xᵀ X: two passes over the rows.
        for (let i = 0; i < n; i++) {
          let dot = 0;
          const off = i * d;
          for (let j = 0; j < d; j++) dot += xc[off + j] * v[j];
          tmp[i] = dot;
        }
        const out = new Float64Array(d);
        for (let i = 0; i < n; i++) {
          const w = tmp[i] / n;
          if (w === 0) continue;
          const off = i * d;
          for (let j = 0; j < d; j++) out[j] += w * xc[off + j];
        }
        return out;
      },
      d,
      k,
      { seed: opts.seed },
    );
  }
  const components = eig.vectors;
  for (let r = 0; r < k; r++) {
    let big = 0;
    for (let j = 0; j < d; j++) {
      if (Math.abs(components[r * d + j]) > Math.abs(big)) big = components[r * d + j];
    }
    if (big < 0) { for (let j = 0; j < d; j++) components[r * d + j] = -components[r * d + j]; }
  }
  const projected = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < k; r++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += xc[i * d + j] * components[r * d + j];
      projected[i * k + r] = dot;
    }
  }
  const variances = Float64Array.from(eig.values, (v) => Math.max(v, 0));
  return { mean, components, variances, totalVariance, projected, k };
}

/** Squared Euclidean distance between row i of a and row j of b (both with d columns). */
export function sqDist(
  a: ArrayLike<number>,
  i: number,
  b: ArrayLike<number>,
  j: number,
  d: number,
): number {
  let s = 0;
  for (let t = 0; t < d; t++) {
    const diff = a[i * d + t] - b[j * d + t];
    s += diff * diff;
  }
  return s;
}

export interface KMeans {
  /** Cluster of each row, 0..k-1. */
  assignments: Int32Array;
  /** `[k, d]`. */
  centroids: Float64Array;
  /** Rows per cluster. */
  sizes: Int32Array;
  /** Sum of squared distances of rows to their centroid. */
  inertia: number;
}

/**
 * Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii, SODA 2007), `restarts` seeded
 * runs, the lowest inertia kept. Deterministic for a given seed. Empty clusters are re-seeded with
 * the row farthest from its centroid.
 */
export function kmeans(
  x: ArrayLike<number>,
  n: number,
  d: number,
  k: number,
  opts: { seed?: number; restarts?: number; maxIter?: number } = {},
): KMeans {
  const { seed = 0, restarts = 4, maxIter = 100 } = opts;
  if (n < k) throw new RangeError(`k-means needs at least k=${k} rows; got ${n}`);
  let best: KMeans | undefined;
  for (let r = 0; r < restarts; r++) {
    const run = lloyd(x, n, d, k, new Rng(seed, 0x4b3a + r), maxIter);
    if (best === undefined || run.inertia < best.inertia) best = run;
  }
  return best!;
}

function lloyd(x: ArrayLike<number>, n: number, d: number, k: number, rng: Rng, maxIter: number) {
  const centroids = new Float64Array(k * d);
  // k-means++: each next centre drawn with probability ∝ squared distance to the nearest one.
  const first = rng.int(n);
  for (let j = 0; j < d; j++) centroids[j] = x[first * d + j];
  const near = new Float64Array(n).fill(Infinity);
  for (let c = 1; c < k; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      near[i] = Math.min(near[i], sqDist(x, i, centroids, c - 1, d));
      total += near[i];
    }
    let pick = 0;
    if (total > 0) {
      let u = rng.next() * total;
      for (pick = 0; pick < n - 1; pick++) {
        u -= near[pick];
        if (u < 0) break;
      }
    } else {
      pick = rng.int(n);
    }
    for (let j = 0; j < d; j++) centroids[c * d + j] = x[pick * d + j];
  }

  const assignments = new Int32Array(n).fill(-1);
  const sizes = new Int32Array(k);
  let inertia = 0;
  for (let it = 0; it < maxIter; it++) {
    let changed = false;
    inertia = 0;
    const dist = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let bestC = 0, bestD = Infinity;
      for (let c = 0; c < k; c++) {
        const dd = sqDist(x, i, centroids, c, d);
        if (dd < bestD) {
          bestD = dd;
          bestC = c;
        }
      }
      dist[i] = bestD;
      inertia += bestD;
      if (assignments[i] !== bestC) {
        assignments[i] = bestC;
        changed = true;
      }
    }
    sizes.fill(0);
    centroids.fill(0);
    for (let i = 0; i < n; i++) {
      const c = assignments[i];
      sizes[c]++;
      for (let j = 0; j < d; j++) centroids[c * d + j] += x[i * d + j];
    }
    for (let c = 0; c < k; c++) {
      if (sizes[c] > 0) {
        for (let j = 0; j < d; j++) centroids[c * d + j] /= sizes[c];
        continue;
      }
      let far = 0;
      for (let i = 1; i < n; i++) if (dist[i] > dist[far]) far = i;
      for (let j = 0; j < d; j++) centroids[c * d + j] = x[far * d + j];
      dist[far] = 0;
      changed = true;
    }
    if (!changed) break;
  }
  return { assignments, centroids, sizes, inertia };
}

/**
 * Mean silhouette coefficient (Rousseeuw 1987) of a clustering: for each row, (b − a)/max(a, b)
 * with a its mean distance to its own cluster and b to the nearest other. Rows of singleton
 * clusters count 0. O(n²·d): pass a subsample (`rows`) for large n.
 */
export function silhouette(
  x: ArrayLike<number>,
  d: number,
  assignments: ArrayLike<number>,
  k: number,
  rows: ArrayLike<number>,
): number {
  const m = rows.length;
  if (m < 2) return 0;
  const counts = new Int32Array(k);
  for (let r = 0; r < m; r++) counts[assignments[rows[r]]]++;
  let total = 0;
  const sums = new Float64Array(k);
  for (let r = 0; r < m; r++) {
    const i = rows[r];
    const own = assignments[i];
    if (counts[own] < 2) continue;
    sums.fill(0);
    for (let s = 0; s < m; s++) {
      if (s === r) continue;
      const j = rows[s];
      sums[assignments[j]] += Math.sqrt(sqDist(x, i, x, j, d));
    }
    const a = sums[own] / (counts[own] - 1);
    let b = Infinity;
    for (let c = 0; c < k; c++) {
      if (c !== own && counts[c] > 0) b = Math.min(b, sums[c] / counts[c]);
    }
    if (!isFinite(b)) continue;
    const den = Math.max(a, b);
    total += den > 0 ? (b - a) / den : 0;
  }
  return total / m;
}

/**
 * `f(A)` for a symmetric `[d, d]` matrix A via its eigendecomposition: `V diag(f(λ)) Vᵀ`
 * (inverse square roots for whitening, exponentials for QUE scoring).
 */
export function symmetricFunction(
  a: ArrayLike<number>,
  d: number,
  f: (lambda: number) => number,
): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const fk = f(values[k]);
    if (fk === 0) continue;
    for (let i = 0; i < d; i++) {
      const vi = vectors[k * d + i] * fk;
      if (vi === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += vi * vectors[k * d + j];
    }
  }
  return out;
}

/** `X A` for an `[n, d]` matrix X and a `[d, d]` matrix A, as a new `[n, d]` array. */
export function multiplyRows(
  x: ArrayLike<number>,
  n: number,
  d: number,
  a: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += x[i * d + t] * a[t * d + j];
      out[i * d + j] = s;
    }
  }
  return out;
}

/** Median of a list (NaN when empty); does not modify it. */
export function median(xs: ArrayLike<number>): number {
  return quantile(Float64Array.from(xs).sort(), 0.5);
}

/**
 * Quantile `p` of an ascending-sorted array, linear interpolation between order statistics
 * (type 7 of Hyndman & Fan, NumPy's default). NaN when empty.
 */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * Math.min(Math.max(p, 0), 1);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

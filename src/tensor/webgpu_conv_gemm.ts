/**
 * The WebGPU program behind our convolution gradients: a tiled matrix product
 * `out[rows, cols] = Σ_inner A[row, inner] · B[inner, col]` whose operands are never materialised —
 * `A` and `B` are read straight from the convolution's tensors (implicit im2col / col2im), so no
 * `[K, M]` columns tensor is ever allocated.
 *
 * Each workgroup of `WC × WR` threads (256 in all) owns an output tile of `TR = WR·RR` rows by
 * `TC = WC·RC` columns (each thread `RR × RC` outputs, strided by the workgroup size so that
 * neighbouring threads read neighbouring shared-memory words). It walks its share of the inner
 * dimension `TI` at a time, staging an `A` tile (`TI × TR`) and a `B` tile (`TI × TC`) in workgroup
 * memory, loaded so that neighbouring threads read neighbouring addresses of the source tensor.
 * With `splits > 1` the inner dimension is cut into `splits` contiguous chunks (workgroup z), each
 * writing its partial sums to its own slice of a `[splits, rows, cols]` output, which
 * {@link SplitSumProgram} then adds up (split-K, no atomics).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";

/** The slice of tfjs-backend-webgpu's `WebGPUProgram` interface that our programs fill in. */
export interface WebgpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  variableNames: string[];
  uniforms?: string;
  size?: boolean;
  getUserCode(): string;
}

/** A uniform value as `runWebGPUProgram` takes it (declared in the program's `uniforms`). */
export type UniformData = { type: "int32" | "uint32" | "float32"; data: number[] };

/** The slice of the WebGPU backend our kernels use. */
export interface WebgpuBackendLike {
  runWebGPUProgram(
    program: WebgpuProgram,
    inputs: tf.TensorInfo[],
    outputDtype: tf.DataType,
    uniforms?: UniformData[],
  ): tf.TensorInfo;
  disposeData(dataId: object): boolean;
  device: { limits: { maxComputeWorkgroupsPerDimension: number } };
}

/** Threads per workgroup: the WebGPU default limit, and a multiple of every GPU's SIMD width. */
const THREADS = 256;
/** Floats of workgroup memory per workgroup: 16 KiB, WebGPU's guaranteed minimum. */
const SHARED_FLOATS = 4096;

/** The tile shape of a product, chosen from the output's rows and columns. */
export interface GemmTiles {
  /** Threads along the columns and the rows (`wc · wr = 256`). */
  wc: number;
  wr: number;
  /** Outputs per thread along the columns and the rows. */
  rc: number;
  rr: number;
  /** Inner-dimension elements staged per step. */
  ti: number;
}

function pow2AtMost(n: number, cap: number): number {
  let p = 1;
  while (p * 2 <= Math.min(n, cap)) p *= 2;
  return p;
}

/**
 * Tiles for `rows × cols`: as many threads along the columns as there are columns (a power of two,
 * at most 16) so that a narrow output (`cin = 1`, `cout = 8`) does not idle most of the workgroup,
 * the rest along the rows; two outputs per thread along a dimension that fills two thread spans
 * (more reuse of each staged value), and the deepest inner step that fits 16 KiB of workgroup
 * memory (at most 32).
 */
export function gemmTiles(rows: number, cols: number): GemmTiles {
  const wc = pow2AtMost(cols, 16);
  const wr = THREADS / wc;
  const rc = cols >= 2 * wc ? 2 : 1;
  const rr = rows >= 2 * wr && wr <= 32 ? 2 : 1;
  const span = wr * rr + wc * rc;
  const ti = Math.min(32, pow2AtMost(Math.floor(SHARED_FLOATS / span), 32));
  return { wc, wr, rc, rr, ti };
}

/** How the program reads its two operands: WGSL bodies of `readA(row, inner)`, `readB(inner, col)`. */
export interface GemmOperands {
  /** A key naming the operand reads (part of the shader cache key). */
  name: string;
  /** The tensors bound, in order (`x`, `dy`, `W`, ...): their names in WGSL. */
  variableNames: string[];
  /** Extra uniforms the reads use, as WGSL struct fields (`"pad : vec2<i32>, ..."`). */
  uniforms: string;
  /** WGSL: `fn readA(row : i32, inner : i32) -> f32` and `fn readB(inner : i32, col : i32) -> f32`. */
  reads: string;
  /**
   * Which index varies fastest between neighbouring threads when staging each operand, chosen so
   * that they read neighbouring addresses of the source tensor.
   */
  aFast: "row" | "inner";
  bFast: "col" | "inner";
}

/**
 * `out[split, row, col] = Σ A[row, i] · B[i, col]` over `i` in split `split`'s chunk of the inner
 * dimension. The output is `[splits, rows, cols]` flat (`outputShape` may be any shape of that
 * size: with one split it is the final tensor).
 */
export class ConvGemmProgram implements WebgpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1], z: [2] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  variableNames: string[];
  uniforms: string;
  private readonly tiles: GemmTiles;
  private readonly ops: GemmOperands;

  constructor(
    ops: GemmOperands,
    outputShape: number[],
    rows: number,
    cols: number,
    splits: number,
    tiles = gemmTiles(rows, cols),
  ) {
    this.ops = ops;
    this.tiles = tiles;
    this.outputShape = outputShape;
    this.variableNames = ops.variableNames;
    this.workgroupSize = [tiles.wc, tiles.wr, 1];
    this.dispatch = [
      Math.ceil(rows / (tiles.wr * tiles.rr)),
      Math.ceil(cols / (tiles.wc * tiles.rc)),
      splits,
    ];
    this.uniforms = `rows : i32, cols : i32, innerDim : i32, chunk : i32, ${ops.uniforms}`;
    const t = tiles;
    this.shaderKey = `purifierConvGemm_${ops.name}_${t.wc}_${t.wr}_${t.rc}_${t.rr}_${t.ti}`;
  }

  getUserCode(): string {
    const { wc, wr, rc, rr, ti } = this.tiles;
    const tr = wr * rr, tc = wc * rc;
    const aIndex = this.ops.aFast === "row"
      ? `let ii = idx / ${tr}; let rr = idx % ${tr};`
      : `let rr = idx / ${ti}; let ii = idx % ${ti};`;
    const bIndex = this.ops.bFast === "col"
      ? `let ii = idx / ${tc}; let cc = idx % ${tc};`
      : `let cc = idx / ${ti}; let ii = idx % ${ti};`;
    return `
${this.ops.reads}

var<workgroup> tileA : array<f32, ${ti * tr}>;
var<workgroup> tileB : array<f32, ${ti * tc}>;

fn main() {
  let tx = i32(localId.x);
  let ty = i32(localId.y);
  let lin = i32(localIndex);
  let row0 = i32(workgroupId.x) * ${tr};
  let col0 = i32(workgroupId.y) * ${tc};
  let split = i32(workgroupId.z);
  var acc : array<f32, ${rr * rc}>;
  for (var q = 0; q < ${rr * rc}; q++) { acc[q] = 0.0; }
  // The chunk is a multiple of ${ti}: every workgroup runs the same number of steps (uniform
  // control flow for the barriers); rows past the inner dimension stage zeros.
  let steps = uniforms.chunk / ${ti};
  for (var t = 0; t < steps; t++) {
    let inner0 = split * uniforms.chunk + t * ${ti};
    for (var idx = lin; idx < ${ti * tr}; idx += ${THREADS}) {
      ${aIndex}
      let row = row0 + rr;
      let inner = inner0 + ii;
      var v = 0.0;
      if (row < uniforms.rows && inner < uniforms.innerDim) { v = readA(row, inner); }
      tileA[ii * ${tr} + rr] = v;
    }
    for (var idx = lin; idx < ${ti * tc}; idx += ${THREADS}) {
      ${bIndex}
      let col = col0 + cc;
      let inner = inner0 + ii;
      var v = 0.0;
      if (col < uniforms.cols && inner < uniforms.innerDim) { v = readB(inner, col); }
      tileB[ii * ${tc} + cc] = v;
    }
    workgroupBarrier();
    for (var ii = 0; ii < ${ti}; ii++) {
      var a : array<f32, ${rr}>;
      for (var i = 0; i < ${rr}; i++) { a[i] = tileA[ii * ${tr} + ty + i * ${wr}]; }
      for (var j = 0; j < ${rc}; j++) {
        let b = tileB[ii * ${tc} + tx + j * ${wc}];
        for (var i = 0; i < ${rr}; i++) { acc[i * ${rc} + j] += a[i] * b; }
      }
    }
    workgroupBarrier();
  }
  let base = split * uniforms.rows * uniforms.cols;
  for (var i = 0; i < ${rr}; i++) {
    let row = row0 + ty + i * ${wr};
    for (var j = 0; j < ${rc}; j++) {
      let col = col0 + tx + j * ${wc};
      if (row < uniforms.rows && col < uniforms.cols) {
        result[base + row * uniforms.cols + col] = acc[i * ${rc} + j];
      }
    }
  }
}
`;
  }
}

/** Sums `[splits, size]` partials over the splits into `outputShape` (one thread per output). */
export class SplitSumProgram implements WebgpuProgram {
  outputShape: number[];
  shaderKey = "purifierSplitSum";
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  variableNames = ["partials"];
  uniforms = "splits : i32,";
  size = true;

  constructor(outputShape: number[]) {
    this.outputShape = outputShape;
    this.dispatchLayout = { x: outputShape.map((_, i) => i) };
    const size = outputShape.reduce((a, b) => a * b, 1);
    this.dispatch = [Math.ceil(size / this.workgroupSize[0]), 1, 1];
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  if (index < uniforms.size) {
    var sum = 0.0;
    for (var s = 0; s < uniforms.splits; s++) { sum += partials[s * uniforms.size + index]; }
    setOutputAtIndex(index, sum);
  }
}
`;
  }
}

import assert from "node:assert/strict";
import { MalformedInputError, ShapeMismatchError, UnprocessableError } from "../../src/errors.ts";
import {
  hasFashionMnist,
  idxDataset,
  loadFashionMnist,
  maybeGunzip,
  parseIdx,
} from "../../src/lab/fashion_mnist.ts";

/** A hand-made IDX file of unsigned bytes. */
function idx(dims: number[], data: number[], opts: { type?: number; extra?: number } = {}) {
  const out = new Uint8Array(4 + 4 * dims.length + data.length + (opts.extra ?? 0));
  const view = new DataView(out.buffer);
  out[2] = opts.type ?? 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const IMAGES = idx([2, 2, 3], [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
const LABELS = idx([2], [7, 3]);

Deno.test("parseIdx() reads big-endian dims and the data of a hand-made file", () => {
  const img = parseIdx(IMAGES, 3);
  assert.deepEqual(img.dims, [2, 2, 3]);
  assert.deepEqual([...img.data], [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
  const big = parseIdx(idx([300], new Array(300).fill(1)), 1);
  assert.deepEqual(big.dims, [300]);
});

Deno.test("idxDataset() builds NHWC images with int32 labels", () => {
  const d = idxDataset(IMAGES, LABELS);
  assert.deepEqual(d.shape, [2, 2, 3, 1]);
  assert.deepEqual([...d.y], [7, 3]);
  assert.equal(d.numClasses, 10);
  assert.equal(d.x[6], 250);
});

Deno.test("parseIdx() rejects bad magic, types, ranks, truncation and trailing bytes", () => {
  const cases: [string, Uint8Array, number | undefined][] = [
    ["too short", new Uint8Array([0, 0, 8]), undefined],
    [
      "nonzero magic",
      (() => {
        const b = IMAGES.slice();
        b[0] = 1;
        return b;
      })(),
      3,
    ],
    ["int32 data", idx([2], [0, 0, 0, 0, 0, 0, 0, 0], { type: 0x0c }), 1],
    ["unknown type", idx([2], [0, 0], { type: 0x42 }), 1],
    ["labels read as images", LABELS, 3],
    ["rank 0", idx([], []), undefined],
    ["truncated data", IMAGES.subarray(0, IMAGES.length - 1), 3],
    ["truncated header", IMAGES.subarray(0, 10), 3],
    ["trailing bytes", idx([2], [1, 2], { extra: 3 }), 1],
  ];
  for (const [what, bytes, rank] of cases) {
    assert.throws(() => parseIdx(bytes, rank), MalformedInputError, what);
  }
});

Deno.test("idxDataset() rejects mismatched counts and labels beyond the classes", () => {
  assert.throws(() => idxDataset(IMAGES, idx([3], [1, 2, 3])), ShapeMismatchError);
  assert.throws(() => idxDataset(IMAGES, idx([2], [1, 10])), ShapeMismatchError);
});

Deno.test("maybeGunzip() inflates gzip, passes raw bytes through and rejects corrupt gzip", async () => {
  const gz = await gzip(IMAGES);
  assert.deepEqual(await maybeGunzip(gz), IMAGES);
  assert.equal(await maybeGunzip(IMAGES), IMAGES);
  const corrupt = gz.slice();
  corrupt.fill(0xff, 10, 20);
  await assert.rejects(() => maybeGunzip(corrupt), MalformedInputError);
  await assert.rejects(() => maybeGunzip(gz.subarray(0, gz.length - 8)), MalformedInputError);
});

Deno.test("loadFashionMnist() reads gzipped and raw IDX files and names missing ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/train-images-idx3-ubyte.gz`, await gzip(IMAGES));
    await Deno.writeFile(`${dir}/train-labels-idx1-ubyte`, LABELS);
    await assert.rejects(() => loadFashionMnist(dir), UnprocessableError);
    await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte`, IMAGES);
    await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte.gz`, await gzip(LABELS));
    const { train, test } = await loadFashionMnist(dir);
    assert.deepEqual(train.shape, [2, 2, 3, 1]);
    assert.deepEqual([...test.y], [7, 3]);
    assert.equal(await hasFashionMnist(dir), true);
    assert.equal(await hasFashionMnist(`${dir}/nowhere`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "loadFashionMnist() reads Debian's 60,000 + 10,000 images",
  ignore: !(await hasFashionMnist()),
  fn: async () => {
    const { train, test } = await loadFashionMnist();
    assert.deepEqual(train.shape, [60000, 28, 28, 1]);
    assert.deepEqual(test.shape, [10000, 28, 28, 1]);
    assert.deepEqual([...train.y.subarray(0, 5)], [9, 0, 0, 3, 0]);
  },
});

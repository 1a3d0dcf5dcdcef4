/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
 * Machine Learning Algorithms", 2017): 60,000 training and 10,000 test images, 28×28 grey, ten
 * classes, in LeCun's IDX format, as Debian's `dataset-fashion-mnist` package installs it
 * (gzipped, under {@link DEFAULT_FASHION_MNIST_DIR}).
 *
 * IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), a rank byte, one big-endian
 * uint32 per dimension, then the data in C order. Labels are `0x00000801` (rank 1), images
 * `0x00000803` (rank 3).
 *
 * @module
 */
import { MalformedInputError, ShapeMismatchError, UnprocessableError } from "../errors.ts";
import type { Dataset } from "./dataset.ts";

/** Where Debian's `dataset-fashion-mnist` puts the files. */
export const DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** Class names, by label. */
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
] as const;

/** IDX type codes, for messages; only unsigned bytes are read. */
const IDX_TYPES: Record<number, string> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "int16",
  0x0c: "int32",
  0x0d: "float32",
  0x0e: "float64",
};

/** A parsed IDX array of unsigned bytes. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/**
 * Parses an uncompressed IDX file of unsigned bytes. `rank`, when given, is required (1 for
 * labels, 3 for images).
 *
 * @throws {MalformedInputError} bad magic, a type other than unsigned byte, an unexpected rank, a
 *   zero-size dimension for images, or a data length different from the product of the dims.
 */
export function parseIdx(bytes: Uint8Array, rank?: number): IdxArray {
  const bad = (what: string) => new MalformedInputError(`invalid IDX file: ${what}`);
  if (bytes.length < 4) throw bad(`it is ${bytes.length} bytes, shorter than the 4-byte magic`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw bad("the magic number must start with two zero bytes (is it still gzipped?)");
  }
  const type = bytes[2], ndim = bytes[3];
  if (type !== 0x08) {
    throw bad(
      `data type 0x${type.toString(16).padStart(2, "0")} (${IDX_TYPES[type] ?? "unknown"}) ` +
        "is not supported; only 0x08 (unsigned byte) is",
    );
  }
  if (rank !== undefined && ndim !== rank) {
    throw bad(`expected rank ${rank} (magic 0x0000080${rank}), found rank ${ndim}`);
  }
  if (ndim === 0) throw bad("rank 0 is not supported");
  const headerLen = 4 + 4 * ndim;
  if (bytes.length < headerLen) {
    throw bad(`it ends inside the ${ndim} dimension sizes (${bytes.length} < ${headerLen} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const found = bytes.length - headerLen;
  if (found !== count) {
    throw bad(
      `dims [${dims.join(", ")}] need ${count} data bytes but the file holds ${found}` +
        (found < count ? " (truncated)" : " (trailing bytes)"),
    );
  }
  return { dims, data: bytes.slice(headerLen) };
}

/**
 * Decompresses gzip data; bytes that do not start with the gzip magic are returned unchanged, so
 * callers accept both `.gz` and raw IDX files.
 *
 * @throws {MalformedInputError} corrupt or truncated gzip data.
 */
export async function maybeGunzip(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new MalformedInputError(`invalid gzip data: ${why}`);
  }
}

/**
 * Builds a dataset from IDX images (`[N, H, W]`) and labels (`[N]`).
 *
 * @throws {MalformedInputError} either file is not valid IDX of the right rank.
 * @throws {ShapeMismatchError} the counts differ or a label is not below `numClasses`.
 */
export function idxDataset(images: Uint8Array, labels: Uint8Array, numClasses = 10): Dataset {
  const img = parseIdx(images, 3);
  const lab = parseIdx(labels, 1);
  const [n, h, w] = img.dims;
  if (lab.dims[0] !== n) {
    throw new ShapeMismatchError(`${n} images but ${lab.dims[0]} labels; they must match`);
  }
  if (h === 0 || w === 0) throw new MalformedInputError(`IDX images are ${h}×${w}; empty images`);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (lab.data[i] >= numClasses) {
      throw new ShapeMismatchError(
        `label ${lab.data[i]} at index ${i} is not in [0, ${numClasses - 1}]`,
      );
    }
    y[i] = lab.data[i];
  }
  return { x: img.data, y, shape: [n, h, w, 1], numClasses };
}

async function readSplit(dir: string, prefix: string): Promise<Dataset> {
  const read = async (stem: string) => {
    for (const name of [`${stem}.gz`, stem]) {
      try {
        return await maybeGunzip(await Deno.readFile(`${dir}/${name}`));
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
    throw new UnprocessableError(
      `Fashion-MNIST file ${dir}/${stem}(.gz) was not found; install Debian's ` +
        "dataset-fashion-mnist package, point --data-dir at the IDX files, or use the synthetic " +
        "dataset",
    );
  };
  const [images, labels] = await Promise.all([
    read(`${prefix}-images-idx3-ubyte`),
    read(`${prefix}-labels-idx1-ubyte`),
  ]);
  return idxDataset(images, labels, FASHION_MNIST_CLASSES.length);
}

/**
 * Loads both splits from `dir` (default {@link DEFAULT_FASHION_MNIST_DIR}); files may be gzipped
 * (`*.gz`) or raw.
 *
 * @throws {UnprocessableError} a file is missing.
 * @throws {MalformedInputError} a file is corrupt.
 */
export async function loadFashionMnist(
  dir: string = DEFAULT_FASHION_MNIST_DIR,
): Promise<{ train: Dataset; test: Dataset }> {
  const [train, test] = await Promise.all([readSplit(dir, "train"), readSplit(dir, "t10k")]);
  return { train, test };
}

/** Whether the Fashion-MNIST training images exist under `dir` (gzipped or raw). */
export async function hasFashionMnist(dir: string = DEFAULT_FASHION_MNIST_DIR): Promise<boolean> {
  for (const name of ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]) {
    try {
      await Deno.stat(`${dir}/${name}`);
      return true;
    } catch {
      // try the next name
    }
  }
  return false;
}

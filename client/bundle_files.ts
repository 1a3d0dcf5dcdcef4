/** Reading and writing a model bundle folder (model.json + shards) and atomic file writes. */
import { dirname, join } from "node:path";

export interface NamedBytes {
  name: string;
  bytes: Uint8Array;
}

export interface BundleOnDisk {
  modelJson: Uint8Array;
  weights: NamedBytes[];
}

/** Reads `dir/model.json` and every shard its manifest names. */
export async function readBundleDir(dir: string): Promise<BundleOnDisk> {
  const modelJson = await Deno.readFile(join(dir, "model.json"));
  const manifest = JSON.parse(new TextDecoder().decode(modelJson)).weightsManifest as {
    paths: string[];
  }[];
  const weights: NamedBytes[] = [];
  for (const group of manifest ?? []) {
    for (const p of group.paths) {
      const name = p.split("/").pop()!;
      weights.push({ name, bytes: await Deno.readFile(join(dir, name)) });
    }
  }
  return { modelJson, weights };
}

/** Writes `data` to `path` via a temporary file and a rename, so a crash never leaves half a file. */
export async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data);
  else await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
}

/** Writes a bundle folder: shards first, model.json last (its presence marks completeness). */
export async function writeBundleDir(dir: string, b: BundleOnDisk): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const w of b.weights) await writeAtomic(join(dir, w.name), w.bytes);
  await writeAtomic(join(dir, "model.json"), b.modelJson);
}

/** Appends the bundle's parts to a form under `model` and `weights` (with a name prefix). */
export function appendBundle(form: FormData, b: BundleOnDisk, prefix = ""): void {
  form.append(
    `${prefix}model`,
    new Blob([b.modelJson as Uint8Array<ArrayBuffer>]),
    "model.json",
  );
  for (const w of b.weights) {
    form.append(`${prefix}weights`, new Blob([w.bytes as Uint8Array<ArrayBuffer>]), w.name);
  }
}

/** Bytes of a part of a multipart answer. */
export async function partBytes(form: FormData, name: string): Promise<Uint8Array> {
  const v = form.get(name);
  if (v === null) throw new Error(`the answer has no '${name}' part`);
  return typeof v === "string"
    ? new TextEncoder().encode(v)
    : new Uint8Array(await v.arrayBuffer());
}

/** Every file part under `name`. */
export async function partFiles(form: FormData, name: string): Promise<NamedBytes[]> {
  const out: NamedBytes[] = [];
  for (const v of form.getAll(name)) {
    if (typeof v !== "string") {
      out.push({ name: v.name, bytes: new Uint8Array(await v.arrayBuffer()) });
    }
  }
  return out;
}

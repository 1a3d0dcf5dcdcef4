/**
 * The report's sample grid: a few test images, clean, with the trigger and under PGD, with the
 * infected model's and the purified model's predictions (`POST /v1/attacks`, `POST /v1/predict`).
 * Adversarial images are made against each model in turn, so "after" is a white-box attack on the
 * purified model rather than a transfer from the infected one.
 */
import type { EvalSet } from "./evaluate.ts";
import { encodeNpy, type NdArray, type NpyDtype, parseNpy } from "../src/io/npy.ts";
import { appendBundle, type BundleOnDisk, partBytes } from "./bundle_files.ts";
import { postWithRetry, type RetryOptions } from "./http.ts";
import { imageBatchFromNpy, imageDataUri } from "./image_png.ts";
import type { ReportImages } from "./report_html.ts";
import type { SampleItem, SamplesSection } from "./report_data.ts";

/** PGD L-inf 8/255, 10 steps: the attack of the sample grid unless the caller names another. */
export const DEFAULT_SAMPLE_ATTACK = { attack: "pgd", eps: 8 / 255, steps: 10 };

export interface SamplesInput {
  server: string;
  infected: BundleOnDisk;
  purified: BundleOnDisk;
  /** The evaluation files (test_x/test_y, optionally test_bd_x/test_bd_y), read once per run. */
  set: EvalSet;
  target?: number;
  count: number;
  attack?: Record<string, unknown>;
  retry: RetryOptions;
}

/**
 * Which test images to show and their triggered twins: images of classes other than the
 * backdoor target (the trigger means nothing on the target class), one per class in turn. The
 * lab writes test_bd_x.npy as the non-target test images in order, so the j-th non-target image's
 * twin is bd index j; when counts do not line up, there is no twin.
 */
export function pickSamples(
  labels: ArrayLike<number>,
  count: number,
  target: number | undefined,
  backdoorCount: number,
): { index: number; bdIndex?: number }[] {
  const pool: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (target === undefined || labels[i] !== target) pool.push(i);
  }
  const twin = new Map<number, number>();
  if (backdoorCount === pool.length) pool.forEach((i, j) => twin.set(i, j));
  else if (backdoorCount === labels.length) pool.forEach((i) => twin.set(i, i));
  const byClass = new Map<number, number[]>();
  for (const i of pool) {
    const c = labels[i];
    if (!byClass.has(c)) byClass.set(c, []);
    byClass.get(c)!.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const out: number[] = [];
  for (let round = 0; out.length < Math.min(count, pool.length); round++) {
    for (const c of classes) {
      const list = byClass.get(c)!;
      if (round < list.length && out.length < count) out.push(list[round]);
    }
  }
  return out.map((index) => ({ index, bdIndex: twin.get(index) }));
}

/** The images at `indices` of an NHWC array, as a new `.npy`. */
export function subsetNpy(a: NdArray, indices: number[]): Uint8Array {
  const per = a.shape.slice(1).reduce((p, v) => p * v, 1);
  const Ctor = a.data.constructor as { new (n: number): NdArray["data"] };
  const data = new Ctor(indices.length * per);
  indices.forEach((i, k) =>
    (data as Uint8Array).set((a.data as Uint8Array).subarray(i * per, (i + 1) * per), k * per)
  );
  return encodeNpy({
    dtype: a.dtype as NpyDtype,
    shape: [indices.length, ...a.shape.slice(1)],
    data: data as Uint8Array,
  });
}

const blob = (b: Uint8Array) => new Blob([b as Uint8Array<ArrayBuffer>]);

async function attack(
  input: SamplesInput,
  model: BundleOnDisk,
  images: Uint8Array,
  labels: number[],
): Promise<{ adversarial: Uint8Array; clean: number[]; adv: number[] }> {
  const res = await postWithRetry(`${input.server}/v1/attacks`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", blob(images), "images.npy");
    f.append("labels", JSON.stringify(labels));
    f.append("params", JSON.stringify(input.attack ?? DEFAULT_SAMPLE_ATTACK));
    return f;
  }, input.retry);
  const form = await res.formData();
  const report = JSON.parse(new TextDecoder().decode(await partBytes(form, "report")));
  const per = report.images as { clean_pred: number; adv_pred: number }[];
  return {
    adversarial: await partBytes(form, "adversarial"),
    clean: per.map((p) => p.clean_pred),
    adv: per.map((p) => p.adv_pred),
  };
}

async function predict(
  input: SamplesInput,
  model: BundleOnDisk,
  images: Uint8Array,
): Promise<number[]> {
  const res = await postWithRetry(`${input.server}/v1/predict`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", blob(images), "images.npy");
    f.append("params", JSON.stringify({ top_k: 1 }));
    return f;
  }, input.retry);
  const r = await res.json();
  return (r.predictions as { class: number }[]).map((p) => p.class);
}

/** Builds the sample grid; returns its figures and the images the page embeds. */
export async function runSamples(
  input: SamplesInput,
): Promise<{ section: SamplesSection; images: NonNullable<ReportImages["samples"]> }> {
  const t0 = performance.now();
  const { testX: xBytes, testY: yBytes, bdX: bdBytes, bdY: bdYBytes } = input.set;
  const testX = parseNpy(xBytes);
  const testY = Array.from(parseNpy(yBytes).data as ArrayLike<number>, Number);
  const bdX = bdBytes ? parseNpy(bdBytes) : undefined;
  const bdY = bdYBytes
    ? Array.from(parseNpy(bdYBytes).data as ArrayLike<number>, Number)
    : undefined;
  // All-to-one: every triggered image is sent to one class, which is then the target.
  const target = input.target ??
    (bdY && bdY.length && bdY.every((t) => t === bdY[0]) ? bdY[0] : undefined);
  const picks = pickSamples(testY, input.count, target, bdX?.shape[0] ?? 0);
  const idx = picks.map((p) => p.index);
  const labels = idx.map((i) => testY[i]);
  const clean = subsetNpy(testX, idx);
  const twins = picks.filter((p) => p.bdIndex !== undefined).map((p) => p.bdIndex!);
  const triggered = bdX && twins.length ? subsetNpy(bdX, twins) : undefined;

  const before = await attack(input, input.infected, clean, labels);
  const after = await attack(input, input.purified, clean, labels);
  const trigBefore = triggered ? await predict(input, input.infected, triggered) : [];
  const trigAfter = triggered ? await predict(input, input.purified, triggered) : [];

  const cleanImgs = imageBatchFromNpy(clean);
  const trigImgs = triggered ? imageBatchFromNpy(triggered) : undefined;
  const advB = imageBatchFromNpy(before.adversarial);
  const advA = imageBatchFromNpy(after.adversarial);
  const items: SampleItem[] = [];
  const images: NonNullable<ReportImages["samples"]> = {
    clean: [],
    triggered: [],
    adversarialBefore: [],
    adversarialAfter: [],
  };
  let t = 0;
  picks.forEach((p, k) => {
    const item: SampleItem = {
      index: p.index,
      label: labels[k],
      clean: { before: before.clean[k], after: after.clean[k] },
      adversarial: { before: before.adv[k], after: after.adv[k] },
    };
    images.clean.push(imageDataUri(cleanImgs, k));
    images.adversarialBefore.push(imageDataUri(advB, k));
    images.adversarialAfter.push(imageDataUri(advA, k));
    if (p.bdIndex !== undefined && trigImgs) {
      item.triggered = {
        bd_index: p.bdIndex,
        target: bdY?.[p.bdIndex] ?? target ?? -1,
        before: trigBefore[t],
        after: trigAfter[t],
      };
      images.triggered.push(imageDataUri(trigImgs, t));
      t++;
    } else {
      images.triggered.push(undefined);
    }
    items.push(item);
  });
  return {
    section: {
      attack: input.attack ?? DEFAULT_SAMPLE_ATTACK,
      items,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    },
    images,
  };
}

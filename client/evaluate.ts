/**
 * Evaluating a model through `POST /v1/evaluate` on a folder of test files as the lab writes
 * them: `test_x.npy`, `test_y.npy` and optionally `test_bd_x.npy` (triggered images of non-target
 * classes) with `test_bd_y.npy` (their backdoor targets). The files are read once per run.
 */
import { join } from "node:path";
import { appendBundle, type BundleOnDisk } from "./bundle_files.ts";
import { postWithRetry, type RetryOptions } from "./http.ts";

export interface EvalSet {
  testX: Uint8Array;
  testY: Uint8Array;
  bdX?: Uint8Array;
  bdY?: Uint8Array;
}

/** Reads an evaluation folder (the backdoor files are optional). */
export async function readEvalSet(dir: string): Promise<EvalSet> {
  const optional = (name: string) => Deno.readFile(join(dir, name)).catch(() => undefined);
  const [testX, testY, bdX, bdY] = await Promise.all([
    Deno.readFile(join(dir, "test_x.npy")),
    Deno.readFile(join(dir, "test_y.npy")),
    optional("test_bd_x.npy"),
    optional("test_bd_y.npy"),
  ]);
  return { testX, testY, bdX, bdY };
}

/**
 * `/v1/evaluate`'s JSON for `model` on `set`: clean accuracy; the backdoor's success rate when
 * triggered images are there with their targets (`test_bd_y.npy`) or a `target`; robust accuracy
 * when `robust` attack options are given.
 */
export async function evaluateModel(
  server: string,
  model: BundleOnDisk,
  set: EvalSet,
  opts: { target?: number; robust?: Record<string, unknown> },
  retry: RetryOptions,
): Promise<Record<string, unknown>> {
  const { testX, testY, bdX, bdY } = set;
  const params: Record<string, unknown> = {};
  const withBackdoor = bdX !== undefined && (bdY !== undefined || opts.target !== undefined);
  if (withBackdoor) params.backdoor = opts.target === undefined ? {} : { target: opts.target };
  if (opts.robust) params.attack = opts.robust;
  const blob = (b: Uint8Array) => new Blob([b as Uint8Array<ArrayBuffer>]);
  const res = await postWithRetry(`${server}/v1/evaluate`, () => {
    const f = new FormData();
    appendBundle(f, model);
    f.append("images", blob(testX), "test_x.npy");
    f.append("labels", blob(testY), "test_y.npy");
    if (withBackdoor) {
      f.append("backdoor_images", blob(bdX!), "test_bd_x.npy");
      if (bdY && opts.target === undefined) f.append("backdoor_labels", blob(bdY), "test_bd_y.npy");
    }
    f.append("params", JSON.stringify(params));
    return f;
  }, retry);
  return await res.json();
}

/**
 * Evaluating a model through `POST /v1/evaluate` on a folder of test files as the lab writes
 * them: `test_x.npy`, `test_y.npy` and optionally `test_bd_x.npy` (triggered images of non-target
 * classes) with `test_bd_y.npy` (their backdoor targets). The files are read once per run.
 */
import { join } from "node:path";
import { appendBundle, type BundleOnDisk } from "./bundle_files.ts";
import { postWithRetry, type RetryOptions } from "./http.ts";
import type { RoundPoint } from "./report_data.ts";

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

/** `eps` as a fraction of 255 where it is one (8/255), else to 4 significant digits. */
export function fmtEps(eps: unknown): string {
  if (typeof eps !== "number" || !Number.isFinite(eps)) return "—";
  const k = Math.round(eps * 255);
  return k > 0 && Math.abs(eps * 255 - k) < 1e-6 ? `${k}/255` : String(Number(eps.toPrecision(4)));
}

/** The robust report's attack in words: "PGD-20 L-inf 8/255" or "autoattack fast L-inf 8/255". */
export function describeRobustAttack(attack: unknown): string | undefined {
  if (typeof attack !== "object" || attack === null) return undefined;
  const a = attack as Record<string, unknown>;
  const norm = a.norm === "l2" ? "L2" : "L-inf";
  if (a.name === "pgd") {
    const restarts = typeof a.restarts === "number" && a.restarts > 1 ? ` ×${a.restarts}` : "";
    return `PGD-${a.steps}${restarts} ${norm} ${fmtEps(a.eps)}`;
  }
  if (a.name === "autoattack") return `autoattack ${a.version} ${norm} ${fmtEps(a.eps)}`;
  return undefined;
}

const num = (v: unknown) => (typeof v === "number" ? v : undefined);

/**
 * The figures a round's report keeps from `/v1/evaluate`'s reply: clean accuracy, ASR, robust
 * accuracy, and with robust accuracy its worst case, per-member figures (the ensemble), the
 * masking flag and the attack in words.
 */
export function roundFigures(r: Record<string, unknown>): Omit<RoundPoint, "round"> {
  const robust = r.robust as Record<string, unknown> | undefined;
  const members = Array.isArray(robust?.members)
    ? (robust.members as Record<string, unknown>[]).map((m) => ({
      member: String(m.member),
      robust_accuracy: Number(m.robust_accuracy),
    }))
    : undefined;
  const point: Omit<RoundPoint, "round"> = {
    clean_accuracy: num(r.clean_accuracy),
    attack_success_rate: num(r.attack_success_rate),
    robust_accuracy: num(r.robust_accuracy),
  };
  if (robust) {
    point.worst_case_robust_accuracy = num(r.worst_case_robust_accuracy);
    if (members) point.robust_members = members;
    if (typeof r.gradient_masking_suspected === "boolean") {
      point.gradient_masking_suspected = r.gradient_masking_suspected;
    }
    point.robust_attack = describeRobustAttack(robust.attack);
  }
  return point;
}

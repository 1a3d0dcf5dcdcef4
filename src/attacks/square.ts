/**
 * Square Attack: Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
 * black-box adversarial attack via random search", ECCV 2020. Score-based and gradient-free: it
 * only reads the model's logits, so gradient masking (saturated softmax, flat or shattered
 * gradients) does not stop it. Random search over square-shaped updates, L-inf and L2:
 *
 * - the objective is the logit margin `z_y − max_{j≠y} z_j` (untargeted; `max_{j≠t} z_j − z_t`
 *   targeted), lowered; a candidate is kept only when it lowers it;
 * - L-inf (Algorithm 2): starts from vertical stripes `x ± eps` (one random sign per column and
 *   channel); each query sets one random window of side `s` of the perturbation to `±eps`, one
 *   random sign per channel;
 * - L2 (Algorithm 3): starts from a grid of "pseudo-Gaussian" squares (rings weighted 1/(r+1)²,
 *   two halves of opposite sign) scaled to norm eps; each query moves the perturbation's mass of
 *   two windows into the first, reshaped as such a square with random sign, keeping norm eps;
 * - the window covers a fraction `p` of the image, `s = round(√(p·H·W))` (L2: `√(p·H·W)`, odd,
 *   at least 3), and `p` halves on the paper's schedule: `p_init` up to iteration 10, then /2,
 *   /4, … /512 after iterations 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10,000 (rescaled to
 *   the budget).
 *
 * Defaults are the paper's and AutoAttack's standard: 5000 queries, `p_init` 0.8, one restart.
 * Every candidate queried lies in the eps-ball (shrunk by the float32 slack of `projection.ts`) and
 * in [0,1]. An image stops being queried once it succeeds.
 */
import * as tf from "@tensorflow/tfjs";
import { UnprocessableError } from "../errors.ts";
import type { Classifier } from "../model/classifier.ts";
import { logitsOf } from "../model/predict.ts";
import { yieldPoint } from "../tensor/yield_point.ts";
import { l2ScaleRadius, linfClipRadius } from "./projection.ts";
import { deriveSeed, Rng } from "../random/rng.ts";
import { type AttackResult, type AttackTarget, DEFAULT_EPS, type Norm } from "./types.ts";

export interface SquareOptions {
  /** Default {@link DEFAULT_EPS}. */
  eps?: number;
  /** Default `"linf"`. */
  norm?: Norm;
  /** Forward passes per image and restart, the starting point's included. Default 5000. */
  queries?: number;
  /** Share of the image the first windows cover. Default 0.8 (the paper's for L-inf and L2). */
  pInit?: number;
  /** Runs from fresh starting points on the images not yet broken. Default 1. */
  restarts?: number;
  /** Seeds positions and signs: restart r of the call draws from `deriveSeed(seed, r)`. Default 0. */
  seed?: number;
  /** Targeted mode: success means the prediction equals the target. */
  target?: AttackTarget;
  /** Checked between queries. */
  signal?: AbortSignal;
}

/** The paper's schedule of the window share `p` at iteration `it` of `total` (see the module doc). */
export function squareP(pInit: number, it: number, total: number): number {
  const i = Math.floor((it / total) * 10000);
  const bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let halvings = 0;
  for (const b of bounds) if (i > b) halvings++;
  return pInit / 2 ** halvings;
}

/** The L-inf window side for share `p` of an `h × w` image: in [1, min(h, w) − 1] (1 if tiny). */
export function linfSide(p: number, h: number, w: number): number {
  const s = Math.round(Math.sqrt(p * h * w));
  return Math.max(1, Math.min(s, Math.min(h, w) - 1));
}

/** The L2 window side: odd, at least 3, at most the image (odd below it when the image is even). */
export function l2Side(p: number, h: number, w: number): number {
  let s = Math.max(Math.round(Math.sqrt(p * h * w)), 3);
  if (s % 2 === 0) s++;
  const most = Math.min(h, w);
  if (s > most) s = most % 2 === 1 ? most : most - 1;
  return Math.max(1, s);
}

/**
 * A `rows × cols` block of concentric rings around its centre, ring r weighted by
 * `Σ_{q ≥ r} 1/(q+1)²` (so the centre carries the most), unnormalised, row-major.
 */
function rings(rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  const [ci, cj] = [Math.floor(rows / 2), Math.floor(cols / 2)];
  const last = Math.max(ci, cj);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const d = Math.max(Math.abs(i - ci), Math.abs(j - cj));
      let v = 0;
      for (let q = d; q <= last; q++) v += 1 / ((q + 1) * (q + 1));
      out[i * cols + j] = v;
    }
  }
  return out;
}

/**
 * The L2 update's `s × s` pattern of unit norm: rings over the top half, minus rings over the
 * bottom half, transposed with probability 1/2.
 */
export function pseudoGaussian(s: number, rand: Rng): Float64Array {
  const top = Math.floor(s / 2);
  const out = new Float64Array(s * s);
  if (top > 0) out.set(normalised(rings(top, s)), 0);
  const bottom = normalised(rings(s - top, s));
  for (let k = 0; k < bottom.length; k++) out[top * s + k] = -bottom[k];
  const unit = normalised(out);
  if (rand.next() < 0.5) return unit;
  const t = new Float64Array(s * s);
  for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) t[j * s + i] = unit[i * s + j];
  return t;
}

function normalised(v: Float64Array): Float64Array {
  let sq = 0;
  for (const a of v) sq += a * a;
  const n = Math.sqrt(sq);
  return n > 0 ? v.map((a) => a / n) : v;
}

/** Square's stream of the request seed (its draws are independent of other uses of the seed). */
const SQUARE_STREAM = 0x5a;

/** −1 or +1 with equal chance. */
const randomSign = (rand: Rng) => (rand.next() < 0.5 ? -1 : 1);

interface Geometry {
  h: number;
  w: number;
  c: number;
  per: number;
}

/** Per image: the logit margin to lower and whether the goal holds (argmax as the oracle's). */
function score(
  z: Float32Array,
  k: number,
  row: number,
  label: number,
  target: number | undefined,
): { margin: number; pred: number } {
  const o = row * k;
  let pred = 0;
  for (let j = 1; j < k; j++) if (z[o + j] > z[o + pred]) pred = j;
  const goal = target ?? label;
  let other = -Infinity;
  for (let j = 0; j < k; j++) if (j !== goal && z[o + j] > other) other = z[o + j];
  const margin = target === undefined ? z[o + goal] - other : other - z[o + goal];
  return { margin, pred };
}

/** The L-inf start: `x ± r` per (column, channel), clipped to [0,1]; written into `out`. */
function linfInit(x0: Float32Array, out: Float32Array, r: number, g: Geometry, rand: Rng) {
  const signs = Array.from({ length: g.w * g.c }, () => randomSign(rand));
  for (let i = 0; i < g.h; i++) {
    for (let j = 0; j < g.w; j++) {
      for (let ch = 0; ch < g.c; ch++) {
        const p = (i * g.w + j) * g.c + ch;
        out[p] = Math.min(1, Math.max(0, x0[p] + r * signs[j * g.c + ch]));
      }
    }
  }
}

/**
 * One L-inf proposal for one image: a random `s × s` window of the perturbation set to `±r` per
 * channel, redrawn (up to 10 times) while it would leave the clipped image unchanged.
 */
function linfPropose(
  x0: Float32Array,
  best: Float32Array,
  out: Float32Array,
  s: number,
  r: number,
  g: Geometry,
  rand: Rng,
) {
  out.set(best);
  const vh = rand.int(g.h - s + 1);
  const vw = rand.int(g.w - s + 1);
  for (let attempt = 0; attempt < 10; attempt++) {
    const signs = Array.from({ length: g.c }, () => randomSign(rand));
    let changed = false;
    for (let i = vh; i < vh + s; i++) {
      for (let j = vw; j < vw + s; j++) {
        for (let ch = 0; ch < g.c; ch++) {
          const p = (i * g.w + j) * g.c + ch;
          out[p] = Math.min(1, Math.max(0, x0[p] + r * signs[ch]));
          if (Math.abs(out[p] - best[p]) > 1e-7) changed = true;
        }
      }
    }
    if (changed) return;
  }
}

/** Writes `x0 + δ·(r/‖δ‖)` clipped to [0,1] into `out` (`δ` in doubles, one image). */
function l2Place(x0: Float32Array, delta: Float64Array, out: Float32Array, r: number) {
  let sq = 0;
  for (const d of delta) sq += d * d;
  const f = sq > 0 ? r / Math.sqrt(sq) : 0;
  for (let p = 0; p < delta.length; p++) out[p] = Math.min(1, Math.max(0, x0[p] + delta[p] * f));
}

/** The L2 start: a grid of pseudo-Gaussian squares of side ⌊H/5⌋, random sign per square and channel. */
function l2Init(x0: Float32Array, out: Float32Array, r: number, g: Geometry, rand: Rng) {
  const s = Math.max(1, Math.floor(g.h / 5));
  const delta = new Float64Array(g.per);
  const off = Math.floor((g.h - s * 5) / 2);
  for (let bi = off; bi + s <= g.h; bi += s) {
    for (let bj = off; bj + s <= g.w; bj += s) {
      const pattern = pseudoGaussian(s, rand);
      for (let ch = 0; ch < g.c; ch++) {
        const sign = randomSign(rand);
        for (let i = 0; i < s; i++) {
          for (let j = 0; j < s; j++) {
            delta[((bi + i) * g.w + bj + j) * g.c + ch] += sign * pattern[i * s + j];
          }
        }
      }
    }
  }
  l2Place(x0, delta, out, r);
}

/**
 * One L2 proposal for one image (Algorithm 3): per channel, window 1's perturbation is replaced
 * by a fresh signed pseudo-Gaussian square plus its old direction, scaled so that window 1 takes
 * the mass of windows 1 and 2 together plus whatever budget the image has left; window 2 is then
 * zeroed, and the whole perturbation is rescaled to norm `r`.
 */
function l2Propose(
  x0: Float32Array,
  best: Float32Array,
  out: Float32Array,
  s: number,
  r: number,
  g: Geometry,
  rand: Rng,
) {
  const delta = new Float64Array(g.per);
  let total = 0;
  for (let p = 0; p < g.per; p++) {
    delta[p] = best[p] - x0[p];
    total += delta[p] * delta[p];
  }
  const [vh, vw] = [rand.int(g.h - s + 1), rand.int(g.w - s + 1)];
  const [vh2, vw2] = [rand.int(g.h - s + 1), rand.int(g.w - s + 1)];
  const inWin = (i: number, j: number, a: number, b: number) =>
    i >= a && i < a + s && j >= b && j < b + s;
  const pattern = pseudoGaussian(s, rand);
  const spare = Math.max(r * r - total, 0) / g.c;
  for (let ch = 0; ch < g.c; ch++) {
    let win1 = 0, both = 0;
    for (let i = 0; i < g.h; i++) {
      for (let j = 0; j < g.w; j++) {
        const d = delta[(i * g.w + j) * g.c + ch];
        const w1 = inWin(i, j, vh, vw);
        if (w1) win1 += d * d;
        if (w1 || inWin(i, j, vh2, vw2)) both += d * d;
      }
    }
    const sign = randomSign(rand);
    const fresh = new Float64Array(s * s);
    const old = Math.sqrt(win1) + 1e-10;
    for (let i = 0; i < s; i++) {
      for (let j = 0; j < s; j++) {
        fresh[i * s + j] = sign * pattern[i * s + j] +
          delta[((vh + i) * g.w + vw + j) * g.c + ch] / old;
      }
    }
    let fn = 0;
    for (const v of fresh) fn += v * v;
    const scale = Math.sqrt(spare + both) / (Math.sqrt(fn) || 1);
    for (let i = vh2; i < vh2 + s; i++) {
      for (let j = vw2; j < vw2 + s; j++) delta[(i * g.w + j) * g.c + ch] = 0;
    }
    for (let i = 0; i < s; i++) {
      for (let j = 0; j < s; j++) {
        delta[((vh + i) * g.w + vw + j) * g.c + ch] = fresh[i * s + j] * scale;
      }
    }
  }
  l2Place(x0, delta, out, r);
}

/**
 * Runs Square Attack against `clf`.
 *
 * @param clf the model under attack (only its logits are read).
 * @param x clean images `[N, H, W, C]` in [0,1].
 * @param y int32 true labels `[N]`.
 * @param options see {@link SquareOptions}.
 * @returns adversarial images in the ball (caller disposes; the best point found for images not
 *   broken), success and prediction per image, and `queries` = forward passes made, one per
 *   image per query.
 * @throws {UnprocessableError} bad numbers, a target that is not a class.
 */
export async function square(
  clf: Classifier,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: SquareOptions = {},
): Promise<AttackResult> {
  const eps = options.eps ?? DEFAULT_EPS;
  const norm = options.norm ?? "linf";
  const budget = options.queries ?? 5000;
  const pInit = options.pInit ?? 0.8;
  const restarts = options.restarts ?? 1;
  const bad = (what: string, v: unknown, allowed: string) =>
    new UnprocessableError(`${what} = ${v} is not allowed; allowed: ${allowed}`);
  if (!(eps > 0 && Number.isFinite(eps))) throw bad("eps", eps, "a finite number > 0");
  if (!(Number.isInteger(budget) && budget >= 1)) throw bad("queries", budget, "an integer ≥ 1");
  if (!(pInit > 0 && pInit <= 1)) throw bad("p_init", pInit, "a number in (0, 1]");
  if (!(Number.isInteger(restarts) && restarts >= 1)) {
    throw bad("restarts", restarts, "an integer ≥ 1");
  }
  const [n, h, w, c] = x.shape;
  const g: Geometry = { h, w, c, per: h * w * c };
  const k = clf.numClasses;
  const labels = Int32Array.from(await y.data());
  const t = options.target;
  const targets = t === undefined
    ? undefined
    : typeof t === "number"
    ? new Int32Array(n).fill(t)
    : Int32Array.from(t);
  if (targets !== undefined) {
    if (targets.length !== n) throw bad("target count", targets.length, `1 or ${n}`);
    const wrong = targets.findIndex((v) => !(v >= 0 && v < k));
    if (wrong >= 0) throw bad(`target of image ${wrong}`, targets[wrong], `0..${k - 1}`);
  }
  const r = norm === "linf" ? linfClipRadius(eps) : l2ScaleRadius(eps, g.per);
  const x0 = Float32Array.from(await x.data());
  const best = Float32Array.from(x0);
  const margin = new Float64Array(n).fill(Infinity);
  const pred = new Int32Array(n);
  const success = new Array<boolean>(n).fill(false);
  const goal = (i: number) =>
    targets === undefined ? pred[i] !== labels[i] : pred[i] === targets[i];
  let queries = 0;

  /** Queries rows `cand` for images `idx`; keeps the ones that lower the margin (all when `force`). */
  const query = async (idx: number[], cand: Float32Array, force: boolean) => {
    const m = idx.length;
    const z = await logitsOf(clf, { data: cand, shape: [m, h, w, c] }, m, options.signal);
    queries += idx.length;
    idx.forEach((i, j) => {
      const sc = score(z, k, j, labels[i], targets?.[i]);
      if (!(force || sc.margin < margin[i])) return;
      margin[i] = sc.margin;
      pred[i] = sc.pred;
      best.set(cand.subarray(j * g.per, (j + 1) * g.per), i * g.per);
      success[i] = goal(i);
    });
  };

  for (let run = 0; run < restarts; run++) {
    let idx = [...success.keys()].filter((i) => !success[i]);
    if (idx.length === 0) break;
    await yieldPoint(options.signal);
    const rand = new Rng(deriveSeed(options.seed ?? 0, run), SQUARE_STREAM);
    const start = new Float32Array(idx.length * g.per);
    idx.forEach((i, j) => {
      const out = start.subarray(j * g.per, (j + 1) * g.per);
      const xi = x0.subarray(i * g.per, (i + 1) * g.per);
      if (norm === "linf") linfInit(xi, out, r, g, rand);
      else l2Init(xi, out, r, g, rand);
    });
    // A restart's start replaces a failed image's best point only if it is better (run > 0).
    await query(idx, start, run === 0);
    for (let it = 1; it < budget; it++) {
      idx = idx.filter((i) => !success[i]);
      if (idx.length === 0) break;
      await yieldPoint(options.signal);
      const p = squareP(pInit, it, budget);
      const s = norm === "linf" ? linfSide(p, h, w) : l2Side(p, h, w);
      const cand = new Float32Array(idx.length * g.per);
      idx.forEach((i, j) => {
        const out = cand.subarray(j * g.per, (j + 1) * g.per);
        const xi = x0.subarray(i * g.per, (i + 1) * g.per);
        const bi = best.subarray(i * g.per, (i + 1) * g.per);
        if (norm === "linf") linfPropose(xi, bi, out, s, r, g, rand);
        else l2Propose(xi, bi, out, s, r, g, rand);
      });
      await query(idx, cand, false);
    }
  }
  return { adversarial: tf.tensor4d(best, [n, h, w, c]), success, predictions: pred, queries };
}

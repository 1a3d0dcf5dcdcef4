/**
 * PUD's identification of poisoned images (Hua et al., "Towards Unified Robustness Against Both
 * Backdoor and Adversarial Attacks", arXiv 2405.17929), as the purification schedule of
 * `src/purify/` runs it, reused here on the model the caller sent.
 *
 * The paper scores each image by the consistency of the infected model's logits with those of an
 * adversarially fine-tuned copy (low consistency = poisoned). Measured on Fashion-MNIST backdoors
 * (DESIGN.md and this module's report), a long fine-tune on a set that excludes the suspected
 * target makes the model forget that class and blurs the ranking, while the first few steps of
 * unlearning separate poisoned from clean images of the target almost perfectly. So, by default:
 *
 * 1. the suspected target is the label most over-represented in the set (an all-to-one attack
 *    adds its poisoned images to the target's count); the first clean set is every image of
 *    other classes on which the model agrees with its label;
 * 2. a trigger is reconstructed for the suspect (Neural Cleanse style, `trigger_reconstruction.ts`);
 * 3. a probe of 3 SGD steps fine-tunes on the clean set, its untargeted PGD examples and its
 *    images stamped with the reconstructed trigger, all with their own labels (the PUD
 *    observation: adversarial examples carry trigger features), and is then reverted;
 * 4. each image of the suspect class is scored by how far the suspect's logit fell during the
 *    probe, `z_infected[t] − z_probe[t]`: images that relied on the backdoor lose the most.
 *    Images of other classes rank below all of them. Flags: Otsu's split of those scores when
 *    they are bimodal, or the top `flag_fraction` of the set when given.
 *
 * Without a suspect (no over-represented label) it falls back to the paper's recipe: an
 * adversarial fine-tune of `finetune_epochs` (at most `max_steps` steps) and score `−s`, with
 * `s = 0.5 + 0.5·cos(z_infected, z_tuned) − 0.5·[argmax differ]`. When the caller supplies a
 * purified model (`options.purified`), its logits are used directly instead of any fine-tuning.
 *
 * The model's weights are restored before returning, whatever happens.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";
import { logitsOf } from "../model/predict.ts";
import { findEvent, type StageEndEvent } from "../purify/events.ts";
import { runRound } from "../purify/round.ts";
import { evidenceCost } from "../purify/evidence_phase.ts";
import { EvidenceSchema, parseSchedule, type Schedule } from "../purify/schedule.ts";
import { consistencyScores, otsuSplit, rowArgmax, suspectClass } from "../purify/selection.ts";
import { FLAGGED } from "../purify/state.ts";
import { trainableVariables } from "../purify/weights.ts";
import type { PudParams } from "./options.ts";
import type { DetectContext, Detector, DetectResult } from "./types.ts";

/** The parsed `pud` params, plus an optional purified model supplied by a library caller. */
export type PudOptions = Omit<PudParams, "method" | "preprocess"> & {
  method?: "pud";
  preprocess?: PudParams["preprocess"];
  /** A purified copy of the model: its logits replace the internal fine-tune. */
  purified?: Classifier;
};

/** Trigger-reconstruction steps of the detector (capped by `max_steps`). */
export const PUD_RECONSTRUCT_STEPS = 300;
/** SGD steps of the probe. */
export const PUD_PROBE_STEPS = 3;
/** Learning rates the probe tries; the cleanest split wins (see `probe_lrs`). */
export const PUD_PROBE_LRS = [0.003, 0.01, 0.03];

/**
 * Image passes (forward, or forward and backward) the detector makes on `n` images, an upper
 * bound in the unit of `MAX_ATTACK_COST`: the infected logits, the trigger reconstruction, each
 * probe attempt (PGD steps plus one training pass per image) and its scoring pass; the evidence
 * phase that finds the suspects; and, when it finds none, the fallback fine-tune and its scoring
 * pass.
 */
export function estimatePudCost(
  o: PudOptions,
  n: number,
  batchSize: number,
  numClasses = 10,
): number {
  const bs = Math.min(batchSize, 1024);
  const evidence = evidenceCost(EvidenceSchema.parse({}), numClasses);
  const reconstruct = Math.max(1, Math.min(PUD_RECONSTRUCT_STEPS, o.max_steps)) * bs;
  const probe = PUD_PROBE_LRS.length *
    (Math.max(1, Math.min(PUD_PROBE_STEPS, o.max_steps)) * bs * (o.pgd_steps + 1) + n);
  const fallback = Math.min(o.finetune_epochs * n, o.max_steps * bs) * (o.pgd_steps + 1) + n;
  return n + evidence + reconstruct + probe + fallback;
}

/** The schedule the detector runs, given whether a suspect class was found. */
export function detectionSchedule(
  o: PudOptions,
  hasSuspect: boolean,
  batchSize: number,
  n: number,
): Schedule {
  const pgd = { eps: o.pgd_eps, steps: o.pgd_steps };
  const flag = o.flag_fraction !== undefined
    ? { rule: "fraction", fraction: Math.min(0.5, o.flag_fraction) }
    : { rule: "split", max_fraction: 0.5 };
  const bs = Math.min(batchSize, 1024);
  if (hasSuspect) {
    return parseSchedule({
      name: "pud-detect",
      score_batch_size: bs,
      stages: [
        {
          kind: "reconstruct",
          name: "reconstruct",
          steps: Math.max(1, Math.min(PUD_RECONSTRUCT_STEPS, o.max_steps)),
          batch_size: bs,
          l1_weight: 3,
        },
        {
          kind: "train",
          name: "probe",
          steps: Math.max(1, Math.min(PUD_PROBE_STEPS, o.max_steps)),
          probe_lrs: PUD_PROBE_LRS,
          batch_size: bs,
          losses: { clean: 1, adversarial: 1, trigger: 1 },
          pgd,
          revert: true,
          rescore: { score: "suspect_drop", scope: "suspect", clean: { rule: "split" }, flag },
        },
      ],
    });
  }
  return parseSchedule({
    name: "pud-detect",
    score_batch_size: bs,
    suspect: { rule: "none" },
    initial_clean: { rule: "outside_suspect" },
    stages: [{
      kind: "train",
      name: "finetune",
      steps: Math.max(1, Math.min(o.max_steps, Math.ceil((o.finetune_epochs * n) / bs))),
      batch_size: bs,
      lr: 0.01,
      losses: { clean: 0, adversarial: 1 },
      pgd,
      revert: true,
      rescore: { score: "consistency", scope: "all", clean: { rule: "split" }, flag },
    }],
  });
}

/**
 * The PUD detector. Scores: higher = more likely poisoned.
 *
 * @param clf the suspect model (its weights are restored before returning).
 * @param images `[N, H, W, C]` in [0,1]; labels int32 `[N]` (possibly poisoned).
 * @param options `pgd_eps` (default 6/255), `pgd_steps` (default 7), `finetune_epochs` (default
 *   2, the fallback fine-tune), `max_steps` (default 200: caps the reconstruction, the probe and
 *   the fallback fine-tune), `flag_fraction` (default: Otsu's split), `seed` (default 0).
 */
export const pud: Detector<PudOptions> = async (
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  options: PudOptions,
  ctx: DetectContext,
): Promise<DetectResult> => {
  const n = labels.length;
  if (options.purified) return fromPurified(clf, options.purified, images, labels, options, ctx);
  const vars = trainableVariables(clf);
  const saved = vars.map((v) => tf.clone(v));
  const run = (schedule: Schedule) =>
    runRound(clf, images, labels, { schedule, seed: options.seed % 2 ** 31 }, undefined, {
      maxSteps: Number.MAX_SAFE_INTEGER,
      maxMs: Number.MAX_SAFE_INTEGER,
      signal: ctx.signal,
    });
  const restore = () => tf.tidy(() => vars.forEach((v, i) => v.assign(saved[i])));
  try {
    const first = await run(detectionSchedule(options, true, ctx.batchSize, n));
    const found = first.report.suspect_classes;
    const start = findEvent(first.report.events, "start");
    let r = first;
    if (found.length === 0) {
      // No class stands out, by the model or the labels: the paper's consistency recipe.
      restore();
      r = await run(detectionSchedule(options, false, ctx.batchSize, n));
    }
    const suspects = r === first ? found : [];
    const where = suspects.length === 0
      ? ""
      : first.report.all_to_all
      ? ", each class on its own (all-to-all suspected)"
      : `, within the suspected class${suspects.length > 1 ? "es" : ""} ${suspects.join(", ")}`;
    const st = r.live;
    const scores = st.scores ?? new Float32Array(n);
    const flags = Uint8Array.from(st.membership, (m) => (m === FLAGGED ? 1 : 0));
    const rescore = findEvent(r.report.events, "rescore");
    const trigger = r.report.events.find((e): e is StageEndEvent =>
      e.event === "stage_end" && e.trigger !== undefined
    )?.trigger;
    // JSON has no Infinity: "nothing flagged" is a cut above every score.
    const cut = typeof rescore?.threshold === "number"
      ? rescore.threshold
      : scores.reduce((m, v) => Math.max(m, v), -Infinity) + 1;
    return {
      scores,
      flags,
      threshold: options.flag_fraction !== undefined
        ? {
          rule: "top_fraction",
          value: options.flag_fraction,
          description: `the top ${options.flag_fraction} of the set by score${where}`,
        }
        : {
          rule: "otsu",
          value: cut,
          description: rescore?.bimodal === false
            ? "the scores are not bimodal (Otsu's between-class share of the variance " +
              `${rescore.separation} < 0.75): nothing flagged`
            : `Otsu's two-group split of the scores${where}`,
        },
      suspectedTarget: first.report.suspect_class ?? undefined,
      diagnostics: {
        suspected_classes: found,
        all_to_all: first.report.all_to_all,
        evidence: first.report.evidence,
        untargeted: start?.untargeted ?? null,
        label_counts: start?.label_counts ?? null,
        label_excess: start?.label_excess ?? null,
        score: suspects.length > 0 ? "suspect_drop" : "consistency",
        separation: rescore?.separation ?? null,
        bimodal: rescore?.bimodal ?? null,
        trigger: trigger ?? null,
        steps: first.live.steps_done + (r === first ? 0 : st.steps_done),
        timings_ms: st.timing,
      },
    };
  } finally {
    restore();
    tf.dispose(saved);
  }
};

/** Scores from a purified model the caller supplies: `−s`, within the suspect class if any. */
async function fromPurified(
  clf: Classifier,
  purified: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  options: PudOptions,
  ctx: DetectContext,
): Promise<DetectResult> {
  const n = labels.length, k = clf.numClasses;
  const z0 = await logitsOf(clf, images, ctx.batchSize, ctx.signal);
  const z = await logitsOf(purified, images, ctx.batchSize, ctx.signal);
  const s = consistencyScores(z0, z, n, k);
  const suspect = suspectClass(labels, k, { rule: "label_excess", min_excess: 0.2 }).class;
  const inScope = (i: number) => suspect === null || labels[i] === suspect;
  const scores = Float32Array.from(s, (v, i) => (inScope(i) ? 1 - v : -1 - v));
  const ranked = [...scores.keys()].filter(inScope);
  const flags = new Uint8Array(n);
  let value: number;
  if (options.flag_fraction !== undefined) {
    value = options.flag_fraction;
    const take = Math.round(options.flag_fraction * n);
    ranked.sort((a, b) => scores[b] - scores[a] || a - b).slice(0, take).forEach((i) =>
      flags[i] = 1
    );
  } else {
    const { cut } = otsuSplit(Float32Array.from(ranked, (i) => scores[i]));
    value = cut;
    for (const i of ranked) {
      const now = rowArgmax(z, i, k);
      if (scores[i] >= cut && now !== rowArgmax(z0, i, k) && now !== labels[i]) flags[i] = 1;
    }
  }
  return {
    scores,
    flags,
    threshold: {
      rule: options.flag_fraction !== undefined ? "top_fraction" : "otsu",
      value,
      description: "1 − consistency with the supplied purified model" +
        (suspect !== null ? `, within the suspected class ${suspect}` : ""),
    },
    suspectedTarget: suspect ?? undefined,
    diagnostics: { score: "consistency", purified: true },
  };
}

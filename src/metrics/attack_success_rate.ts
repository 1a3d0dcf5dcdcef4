/**
 * Attack success rate (ASR) of a backdoor: among triggered images whose true class is not the
 * target, the share the model classifies as the target (Gu et al., "BadNets", 2017; the usual
 * all-to-one definition). Images already of the target class are left out: counting them would
 * credit the backdoor with the model's clean accuracy on that class.
 *
 * @module
 */
import type { ImageBatch } from "../io/images.ts";
import type { Classifier } from "../model/classifier.ts";
import { applyTrigger, type TriggerSpec } from "../triggers/trigger.ts";
import { type ClassFigure, figures, predictClasses } from "./accuracy.ts";
import { checkLabels, checkTarget } from "../io/label_checks.ts";

export interface AsrReport {
  /** The backdoor's target class; null when each image has its own (all-to-all backdoors). */
  target: number | null;
  /** Share of counted triggered images predicted as the target; null when none was counted. */
  asr: number | null;
  hits: number;
  total: number;
  /** Per true (source) class when the source labels are known, else per target class. */
  per_class?: ClassFigure[];
  /** What `per_class` groups by. */
  per_class_by?: "source" | "target";
  /**
   * Share of the clean test images of other classes that the model predicts as the target with
   * no trigger at all: the floor of the ASR (natural confusions, e.g. Fashion-MNIST shirts taken
   * for T-shirts), reported by `evaluate` when the backdoor has one target.
   */
  clean_target_rate?: number | null;
}

/**
 * ASR on images that already carry the trigger.
 *
 * @param triggered triggered images `[N, H, W, C]` in [0,1].
 * @param target the class the backdoor sends them to.
 * @param sourceLabels their true classes, when known: images of the target class are then left
 *   out and per-class figures are reported. Without them every image counts.
 */
export async function attackSuccessRate(
  clf: Classifier,
  triggered: ImageBatch,
  target: number,
  opts: { sourceLabels?: Int32Array; batchSize?: number; signal?: AbortSignal } = {},
): Promise<AsrReport> {
  const k = clf.numClasses;
  checkTarget(target, k);
  if (opts.sourceLabels) checkLabels(triggered, opts.sourceLabels, k);
  const pred = await predictClasses(clf, triggered, opts);
  const src = opts.sourceLabels;
  let hits = 0, total = 0;
  for (let i = 0; i < pred.length; i++) {
    if (src && src[i] === target) continue;
    total++;
    if (pred[i] === target) hits++;
  }
  const report: AsrReport = { target, asr: total ? hits / total : null, hits, total };
  if (src) {
    const per = figures(pred.map((p) => (p === target ? 1 : 0)), src, k).per_class;
    report.per_class = per.map((f) => (f.class === target ? { ...f, n: 0, value: null } : f));
    report.per_class_by = "source";
  }
  return report;
}

/** ASR of a trigger spec applied to clean labelled images (those of the target class skipped). */
export function triggerSuccessRate(
  clf: Classifier,
  images: ImageBatch,
  labels: Int32Array,
  trigger: TriggerSpec,
  target: number,
  opts: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<AsrReport> {
  checkLabels(images, labels, clf.numClasses);
  checkTarget(target, clf.numClasses);
  const data = applyTrigger(trigger, images);
  return attackSuccessRate(clf, { shape: images.shape, data }, target, {
    ...opts,
    sourceLabels: labels,
  });
}

/**
 * ASR when each triggered image has its own backdoor target (the lab's `test_bd_y.npy`, and
 * all-to-all backdoors, where class y is sent to (y + 1) mod K): the share of images predicted as
 * their target. Per-class figures are by the images' source class when `sourceLabels` are given
 * (images whose source is their target are then left out), else by target class. One shared
 * target is reported as `target`.
 */
export async function targetedSuccessRate(
  clf: Classifier,
  triggered: ImageBatch,
  targets: Int32Array,
  opts: { batchSize?: number; signal?: AbortSignal; sourceLabels?: Int32Array } = {},
): Promise<AsrReport> {
  const k = clf.numClasses;
  checkLabels(triggered, targets, k);
  const src = opts.sourceLabels;
  if (src) checkLabels(triggered, src, k);
  const pred = await predictClasses(clf, triggered, opts);
  // An image whose source is its target says nothing about the backdoor.
  const kept = [...pred.keys()].filter((i) => !src || src[i] !== targets[i]);
  const by = src ?? targets;
  const f = figures(
    kept.map((i) => (pred[i] === targets[i] ? 1 : 0)),
    Int32Array.from(kept, (i) => by[i]),
    k,
  );
  const shared = targets.length > 0 && targets.every((t) => t === targets[0]);
  return {
    target: shared ? targets[0] : null,
    asr: f.accuracy,
    hits: f.correct,
    total: f.total,
    per_class: f.per_class,
    per_class_by: src ? "source" : "target",
  };
}

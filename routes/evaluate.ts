/**
 * `POST /v1/evaluate`: model + test images + labels → clean accuracy; + a backdoor (triggered
 * images, or a trigger spec from the lab, and its target) → attack success rate on non-target
 * classes; + attack options → robust accuracy under PGD. Overall and per class.
 */
import type { Hono } from "hono";
import { z } from "zod";
import { CostExceededError, UnprocessableError } from "../src/errors.ts";
import type { AppEnv } from "../src/http/env.ts";
import { type Form, readForm } from "../src/http/form.ts";
import {
  loadModel,
  PARTS,
  readBundle,
  readImagesFor,
  readLabelledImages,
  readLabels,
} from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import type { Config } from "../src/config.ts";
import type { LoadedClassifier } from "../src/model/load_classifier.ts";
import { checkTarget } from "../src/metrics/check.ts";
import {
  attackOptions,
  type BackdoorInput,
  evaluate,
  type EvaluateParams,
  EvaluateParamsSchema,
} from "../src/metrics/evaluate.ts";

/** The figures a pipeline reads first, next to the detailed reports. */
const EvaluateReply = z.object({
  clean_accuracy: z.number().nullable(),
  attack_success_rate: z.number().nullable().optional(),
  clean_target_rate: z.number().nullable().optional().describe(
    "share of clean test images of other classes already predicted as the backdoor target " +
      "(no trigger): the floor of the attack success rate",
  ),
  robust_accuracy: z.number().nullable().optional(),
  clean: z.unknown(),
  backdoor: z.unknown().optional(),
  robust: z.unknown().optional(),
  ms: z.number(),
  backend: z.string(),
});

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/evaluate",
  summary: "Clean accuracy, backdoor attack success rate and robust accuracy of a model.",
  description: "Backdoor ASR counts only images whose true class is not the target (the lab's " +
    "test_bd_x.npy with test_bd_y.npy as 'backdoor_labels' already is). Robust accuracy uses " +
    "untargeted L-inf PGD (default 20 steps, eps 8/255); its cost (images × steps × restarts) " +
    "is checked against MAX_ATTACK_COST before any work (422 beyond).",
  parts: [
    ...PARTS.model(),
    PARTS.images("clean test images: one .npy (NHWC) or PNG/JPEG files"),
    PARTS.labels("their true classes (.npy or JSON array)"),
    {
      name: "backdoor_images",
      description: "triggered images (.npy or PNG/JPEG); needs params.backdoor",
      multiple: true,
    },
    {
      name: "backdoor_labels",
      description: "the class each triggered image is sent to (e.g. the lab's test_bd_y.npy)",
    },
    {
      name: "backdoor_source_labels",
      description: "the true class of each triggered image: images of the target class are " +
        "left out",
    },
    { name: "params", description: "what to evaluate", schema: EvaluateParamsSchema },
  ],
  response: EvaluateReply,
}];

/** The backdoor to measure, from params and parts; undefined when none was asked for. */
async function readBackdoor(
  form: Form,
  config: Config,
  clf: LoadedClassifier,
  params: EvaluateParams,
): Promise<BackdoorInput | undefined> {
  const bd = params.backdoor;
  const hasImages = form.has("backdoor_images");
  if (bd === undefined) {
    if (hasImages || form.has("backdoor_labels") || form.has("backdoor_source_labels")) {
      throw new UnprocessableError(
        'backdoor parts were sent without params.backdoor; add {"backdoor": {"target": T}} ' +
          "(or {} with 'backdoor_labels')",
      );
    }
    return undefined;
  }
  const k = clf.numClasses;
  if (bd.trigger !== undefined) {
    if (hasImages) {
      throw new UnprocessableError(
        "send either params.backdoor.trigger or the 'backdoor_images' part, not both",
      );
    }
    if (bd.target === undefined) {
      throw new UnprocessableError("params.backdoor.trigger needs params.backdoor.target");
    }
    checkTarget(bd.target, k);
    return { trigger: bd.trigger, target: bd.target };
  }
  if (!hasImages) {
    throw new UnprocessableError(
      "params.backdoor needs either a 'trigger' spec or the 'backdoor_images' part",
    );
  }
  const images = await readImagesFor(form, config, clf, "backdoor_images");
  const expect = { count: images.shape[0], numClasses: k };
  const targets = await readLabels(form, "backdoor_labels", expect, false);
  if (targets !== undefined) {
    if (bd.target !== undefined && targets.some((t) => t !== bd.target)) {
      throw new UnprocessableError(
        `params.backdoor.target is ${bd.target} but 'backdoor_labels' names other classes; ` +
          "send one or the other",
      );
    }
    return { images, targets };
  }
  if (bd.target === undefined) {
    throw new UnprocessableError(
      "'backdoor_images' need params.backdoor.target or the 'backdoor_labels' part",
    );
  }
  checkTarget(bd.target, k);
  const sourceLabels = await readLabels(form, "backdoor_source_labels", expect, false);
  return { images, target: bd.target, sourceLabels };
}

export function register(app: Hono<AppEnv>): void {
  app.post("/v1/evaluate", async (c) => {
    const { config, queue, backend } = c.get("services");
    const signal = c.get("signal");
    const form = await readForm(c.req.raw, { maxParts: config.MAX_PARTS });
    const params = await form.json("params", EvaluateParamsSchema);
    const bundle = await readBundle(form, config);
    const body = await queue.run(async () => {
      const clf = await loadModel(bundle, params.preprocess);
      try {
        const { images, labels } = await readLabelledImages(form, config, clf);
        const n = images.shape[0];
        const attack = attackOptions(params);
        if (attack !== undefined) {
          const cost = Math.min(n, attack.maxImages ?? n) * (attack.steps ?? 20) *
            (attack.restarts ?? 1);
          if (cost > config.MAX_ATTACK_COST) {
            throw new CostExceededError(
              `robust accuracy would cost ${cost} gradient evaluations (images × steps × ` +
                `restarts); the limit is MAX_ATTACK_COST=${config.MAX_ATTACK_COST}: lower ` +
                "attack.max_images, steps or restarts",
              { cost, limit: config.MAX_ATTACK_COST },
            );
          }
        }
        const backdoor = await readBackdoor(form, config, clf, params);
        const report = await evaluate(clf, { test: { images, labels }, backdoor, attack }, {
          batchSize: params.batch_size,
          signal,
        });
        return {
          clean_accuracy: report.clean.accuracy,
          ...(report.backdoor
            ? {
              attack_success_rate: report.backdoor.asr,
              clean_target_rate: report.backdoor.clean_target_rate ?? null,
            }
            : {}),
          ...(report.robust ? { robust_accuracy: report.robust.robust_accuracy } : {}),
          ...report,
          backend: backend.name,
        };
      } finally {
        clf.dispose();
      }
    }, signal);
    return c.json(body);
  });
}

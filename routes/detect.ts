/**
 * `POST /v1/detect`: model + images + labels (+ method and options, + optional ground truth
 * `is_poison`) → per image a score and a flag, the threshold rule, per-class flag counts, the
 * suspected target class, and with ground truth precision, recall, F1, AUROC and the ROC curve.
 */
import type { Hono } from "hono";
import { DetectParamsSchema } from "../src/detect/options.ts";
import { runDetect } from "../src/detect/run.ts";
import type { AppEnv } from "../src/http/env.ts";
import { readForm } from "../src/http/form.ts";
import {
  loadModel,
  PARTS,
  readBundle,
  readLabelledImages,
  readLabels,
} from "../src/http/inputs.ts";
import type { Operation } from "../src/http/openapi.ts";
import type { LoadedClassifier } from "../src/model/load_classifier.ts";

export const operations: Operation[] = [{
  method: "post",
  path: "/v1/detect",
  summary: "Flag poisoned images in a (possibly dirty) dataset with a suspect model.",
  description:
    "Methods: pud (Progressive Unified Defense identification), spectral, activation-clustering, " +
    "strip, spectre. Scores are oriented so that higher means more likely poisoned.",
  parts: [
    ...PARTS.model("model.json of the suspect model"),
    PARTS.images(),
    PARTS.labels("labels as given (possibly poisoned): .npy or JSON array"),
    {
      name: "purified_model",
      description: "pud only: model.json of a purified copy (e.g. from /v1/purify/rounds); its " +
        "logits replace the internal adversarial fine-tune",
    },
    {
      name: "purified_weights",
      description: "weight shards of the purified model",
      multiple: true,
    },
    {
      name: "is_poison",
      description: "optional ground truth, 1 = poisoned, per image (.npy or JSON array): adds " +
        "precision, recall, F1 and AUROC",
    },
    {
      name: "params",
      description: "method and options",
      schema: DetectParamsSchema,
      required: true,
    },
  ],
}];

export function register(app: Hono<AppEnv>): void {
  app.post("/v1/detect", async (c) => {
    const { config, queue, backend } = c.get("services");
    const signal = c.get("signal");
    const form = await readForm(c.req.raw, { maxParts: config.MAX_PARTS });
    const params = await form.json("params", DetectParamsSchema);
    const bundle = await readBundle(form, config);
    const purifiedBundle = form.has("purified_model")
      ? await readBundle(form, config, "purified_")
      : undefined;
    const body = await queue.run(async () => {
      const clf = await loadModel(bundle, params.preprocess);
      let purified: LoadedClassifier | undefined;
      try {
        if (purifiedBundle) purified = await loadModel(purifiedBundle, params.preprocess);
        const { images, labels } = await readLabelledImages(form, config, clf);
        // Ground truth is a label set of two classes: 0 clean, 1 poisoned.
        const truth = await readLabels(
          form,
          "is_poison",
          { count: images.shape[0], numClasses: 2 },
          false,
        );
        const isPoison = truth && Uint8Array.from(truth);
        const { result, report } = await runDetect(clf, images, labels, params, {
          signal,
          maxCost: config.MAX_ATTACK_COST,
          isPoison,
          purified,
        });
        return {
          ...report,
          backend: backend.name,
          scores: Array.from(result.scores),
          flags: Array.from(result.flags),
          flagged_indices: [...result.flags.keys()].filter((i) => result.flags[i] === 1),
        };
      } finally {
        clf.dispose();
        purified?.dispose();
      }
    }, signal);
    return c.json(body);
  });
}

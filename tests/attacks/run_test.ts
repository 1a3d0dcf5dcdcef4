import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type AttackParamsInput, AttackParamsSchema } from "../../src/attacks/options.ts";
import { runAttack } from "../../src/attacks/run.ts";
import {
  CostExceededError,
  HttpError,
  ShapeMismatchError,
  UnprocessableError,
} from "../../src/errors.ts";
import type { Classifier } from "../../src/model/classifier.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { CLASSES, SHAPE, syntheticData, trainedCnn } from "./_fixtures.ts";

const params = (p: AttackParamsInput) => AttackParamsSchema.parse(p);

function batch(n: number) {
  const d = syntheticData(n, 99);
  return {
    images: { shape: [n, ...SHAPE] as [number, number, number, number], data: d.x },
    labels: d.y,
  };
}

/** A classifier that fails the test if anything calls it. */
const untouchable: Classifier = {
  get model(): tf.LayersModel {
    throw new Error("model touched");
  },
  inputShape: SHAPE,
  numClasses: CLASSES,
  logits: () => {
    throw new Error("logits called before validation finished");
  },
};

async function refuses(
  p: AttackParamsInput,
  mutate: (b: ReturnType<typeof batch>) => void,
  want: new (...a: never[]) => HttpError,
  message: RegExp,
  maxCost = 1e9,
) {
  await setupBackend();
  const b = batch(6);
  mutate(b);
  const before = tf.memory().numTensors;
  await assert.rejects(
    runAttack(untouchable, b.images, b.labels, params(p), { maxCost }),
    (e: unknown) => {
      assert.ok(e instanceof want, `${e}`);
      assert.equal((e as HttpError).status, 422);
      assert.match((e as Error).message, message);
      return true;
    },
  );
  assert.equal(tf.memory().numTensors, before);
}

Deno.test("runAttack() refuses a request over the cost budget before any tensor work", async () => {
  // 6 images × 10 steps × 2 restarts = 120 > 100.
  await refuses(
    { attack: "pgd", restarts: 2 },
    () => {},
    CostExceededError,
    /pgd needs up to 120 gradient evaluations \(images × steps × restarts\); the limit is 100: send fewer images, steps or restarts/,
    100,
  );
});

Deno.test("runAttack()'s cost refusal names what Square and the ensemble count", async () => {
  // Square: 6 images × 50 queries × 1 restart = 300 forward passes.
  await refuses(
    { attack: "square", queries: 50 },
    () => {},
    CostExceededError,
    /square needs up to 300 forward passes \(images × queries × restarts\).*fewer images or queries/,
    299,
  );
  await refuses(
    { attack: "autoattack", version: "fast" },
    () => {},
    CostExceededError,
    /autoattack needs up to \d+ image passes \(its members' gradient evaluations and Square's queries/,
    100,
  );
});

Deno.test("runAttack() refuses a target equal to an image's label, naming the image", async () => {
  await refuses(
    { attack: "pgd", target: [1, 2, 0, 0, 1, 2] },
    (b) => b.labels.set([0, 1, 2, 0, 1, 2]),
    UnprocessableError,
    /image 3/,
  );
  await refuses(
    { attack: "fgsm", target: 2 },
    (b) => b.labels.set([0, 1, 2, 0, 1, 2]),
    UnprocessableError,
    /image 2/,
  );
});

Deno.test("runAttack() refuses targets and labels that are not classes of the model", async () => {
  await refuses({ attack: "pgd", target: 3 }, () => {}, UnprocessableError, /target 3.*0\.\.2/);
  await refuses(
    { attack: "apgd", target: [1, 2, 0, 1, 2, 7] },
    () => {},
    UnprocessableError,
    /image 5/,
  );
  await refuses(
    { attack: "pgd" },
    (b) => (b.labels[4] = 9),
    UnprocessableError,
    /label 9 of image 4/,
  );
  await refuses(
    { attack: "pgd", target: [1, 2] },
    () => {},
    ShapeMismatchError,
    /2 entries for 6 images/,
  );
});

Deno.test("runAttack() refuses images whose shape or pixel range the model cannot take", async () => {
  await refuses(
    { attack: "fgsm" },
    (b) => {
      b.images.shape = [6, 4, 16, 1];
    },
    ShapeMismatchError,
    /\[N, 8, 8, 1\]/,
  );
  await refuses(
    { attack: "fgsm" },
    (b) => {
      b.labels = b.labels.subarray(0, 5);
    },
    ShapeMismatchError,
    /6 images but 5 labels/,
  );
  await refuses(
    { attack: "fgsm" },
    (b) => (b.images.data[64 * 2 + 5] = 1.5),
    UnprocessableError,
    /pixel 5 of image 2/,
  );
  await refuses({ attack: "fgsm" }, (b) => (b.images.data[0] = NaN), UnprocessableError, /image 0/);
});

Deno.test("runAttack() reports per image and overall, and leaves no tensor behind", async () => {
  const clf = await trainedCnn();
  const b = batch(20);
  const p = params({ attack: "pgd", eps: 0.08, batch_size: 8 });
  const { adversarial, shape, report } = await assertNoLeak(() =>
    runAttack(clf, b.images, b.labels, p, { maxCost: 1000 })
  );
  assert.deepEqual(shape, [20, 8, 8, 1]);
  assert.equal(adversarial.length, b.images.data.length);
  assert.equal(report.n, 20);
  assert.deepEqual(report.params, p);
  assert.equal(report.images.length, 20);
  assert.ok(report.queries > 0 && report.queries <= 200);
  let ok = 0, clean = 0, robust = 0;
  for (const r of report.images) {
    let linf = 0, sq = 0;
    for (let j = r.index * 64; j < (r.index + 1) * 64; j++) {
      const d = Math.abs(adversarial[j] - b.images.data[j]);
      linf = Math.max(linf, d);
      sq += d * d;
    }
    assert.equal(r.linf, linf);
    assert.ok(Math.abs(r.l2 - Math.sqrt(sq)) < 1e-9);
    assert.ok(r.linf <= 0.08);
    assert.equal(r.label, b.labels[r.index]);
    assert.equal(r.success, r.adv_pred !== r.label);
    assert.equal(r.target, undefined);
    ok += r.success ? 1 : 0;
    clean += r.clean_pred === r.label ? 1 : 0;
    robust += r.adv_pred === r.label ? 1 : 0;
  }
  assert.equal(report.success_rate, ok / 20);
  assert.equal(report.clean_accuracy, clean / 20);
  assert.equal(report.robust_accuracy, robust / 20);
  assert.ok(report.clean_accuracy >= 0.9 && report.success_rate > 0 && report.robust_accuracy < 1);
  assert.ok(report.time_ms >= 0);
});

Deno.test("runAttack() gives the same deterministic attack whatever the batch size", async () => {
  const clf = await trainedCnn();
  const b = batch(10);
  const run = (batch_size: number) =>
    runAttack(clf, b.images, b.labels, params({ attack: "mifgsm", eps: 0.06, batch_size }), {
      maxCost: 1e6,
    });
  const [one, many] = [await run(3), await run(128)];
  assert.deepEqual(one.adversarial, many.adversarial);
  assert.deepEqual(one.report.images, many.report.images);
});

Deno.test("runAttack() runs targeted attacks and reports each image's target", async () => {
  const clf = await trainedCnn();
  const b = batch(9);
  const target = Array.from(b.labels, (l) => (l + 1) % CLASSES);
  const { report } = await runAttack(
    clf,
    b.images,
    b.labels,
    params({ attack: "apgd", eps: 0.15, steps: 20, target }),
    {
      maxCost: 1e6,
    },
  );
  for (const r of report.images) {
    assert.equal(r.target, target[r.index]);
    assert.equal(r.success, r.adv_pred === r.target);
  }
  assert.ok(report.success_rate >= 0.9);
});

Deno.test("runAttack() stops between batches when its signal is aborted, leaving no tensor behind", async () => {
  const clf = await trainedCnn();
  const b = batch(12);
  const ctl = new AbortController();
  const reason = new Error("time budget");
  let calls = 0;
  // Abort during the first batch's clean forward pass: that batch still finishes its tensors.
  const watched: Classifier = {
    ...clf,
    logits: (x, training) => {
      if (++calls === 1) ctl.abort(reason);
      return clf.logits(x, training);
    },
  };
  await assertNoLeak(() =>
    assert.rejects(
      runAttack(watched, b.images, b.labels, params({ attack: "fgsm", batch_size: 4 }), {
        maxCost: 1e6,
        signal: ctl.signal,
      }),
      (e) => e === reason,
    )
  );
  assert.ok(calls <= 2, `${calls} forward passes after the abort`);
});

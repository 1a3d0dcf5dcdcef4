import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { parseRoundParams } from "../../src/purify/params.ts";
import { progressShare, remainingUnits } from "../../src/purify/progress.ts";
import { runRound } from "../../src/purify/round.ts";
import { resolveSchedule } from "../../src/purify/params.ts";
import {
  encodeState,
  freshState,
  openState,
  type RoundState,
  sealState,
} from "../../src/purify/state.ts";
import { MeanTeacher } from "../../src/purify/teacher.ts";
import {
  datasetFingerprint,
  modelFingerprint,
  paramCount,
  trainableVariables,
} from "../../src/purify/weights.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import {
  backdooredClassifier,
  CLASSES,
  makeSet,
  SIZE,
  tinySchedule,
} from "./synthetic_backdoor.ts";

const extra = makeSet(240, 0.1, 2);

Deno.test("a state's arrays come back from encode, seal and open exactly as the round left them", async () => {
  const params = parseRoundParams({ schedule: tinySchedule(), seed: 7 });
  // Mid-probe (trigger with Adam moments, probe membership, momentum, reference weights) and
  // mid-way through the mean-teacher stage (teacher weights).
  for (
    const [steps, holds] of [[216, ["trigger", "probe", "momentum", "reference"]], [
      260,
      ["trigger", "momentum", "teacher"],
    ]] as const
  ) {
    const clf = await backdooredClassifier();
    try {
      const r = await runRound(clf, extra.images, extra.labels, params, undefined, {
        maxSteps: steps,
        maxMs: 600_000,
      });
      for (const k of holds) assert.ok(r.live[k] !== null, `${steps}: ${k}`);
      const [n, height, width, channels] = extra.images.shape;
      const opened = await openState(JSON.parse(JSON.stringify(r.state)), {
        n,
        height,
        width,
        channels,
        numClasses: clf.numClasses,
        params: paramCount(clf),
        datasetFingerprint: await datasetFingerprint(extra.images, extra.labels),
        modelFingerprint: await modelFingerprint(clf),
      });
      assert.deepEqual(opened, r.live);
      // And back: the same wire form, so the same checksum.
      assert.deepEqual(await sealState(encodeState(opened)), r.state);
    } finally {
      clf.dispose();
    }
  }
});

Deno.test("a fresh state starts at the infected logits' first unit with every image in the pool", async () => {
  const schedule = resolveSchedule(tinySchedule() as never);
  const dims = { n: 100, height: SIZE, width: SIZE, channels: 1, numClasses: CLASSES, params: 9 };
  const st: RoundState = freshState(schedule, 3, dims, {
    dataset: "a".repeat(64),
    model: "b".repeat(64),
  });
  assert.deepEqual(st.cursor, { phase: "init", stage: 0, step: 0, total: 2, attempt: 0 });
  assert.equal(st.infected_logits.length, 100 * CLASSES);
  assert.ok(st.membership.every((m) => m === 0));
  assert.equal(st.fingerprints.current_model, st.fingerprints.original_model);
  // Init's 2 units, the evidence phase's bound, then every stage (train stages sized by n).
  const rest = remainingUnits(st, 100);
  assert.ok(rest > 2 + 200, `${rest}`);
  assert.equal(progressShare(0, rest), 0);
  assert.equal(progressShare(1, 2), 0.3333);
  // Its wire form: every array base64, membership all POOL.
  const sealed = await sealState(encodeState(st));
  assert.equal(sealed.membership, btoa("\0".repeat(100)));
});

Deno.test("MeanTeacher follows teacher ← d·teacher + (1 − d)·student and saves exactly", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2])));
    const teacher = MeanTeacher.of([v]);
    tf.tidy(() => v.assign(tf.tensor1d([3, 6])));
    teacher.update([v], 0.75);
    // 0.75·[1, 2] + 0.25·[3, 6]
    assert.deepEqual(Array.from(await teacher.export()), [1.5, 3]);
    const again = MeanTeacher.fromFlat([v], await teacher.export());
    assert.deepEqual(Array.from(await again.export()), [1.5, 3]);
    assert.deepEqual(Array.from(await v.data()), [3, 6]);
    teacher.dispose();
    again.dispose();
    v.dispose();
  });
});

Deno.test("MeanTeacher.probs() runs the teacher's weights and leaves the student's in place", async () => {
  const clf = await backdooredClassifier();
  try {
    await assertNoLeak(async () => {
      const vars = trainableVariables(clf);
      const x = tf.tensor4d(extra.images.data.subarray(0, 8 * SIZE * SIZE), [8, SIZE, SIZE, 1]);
      const before = tf.tidy(() => tf.softmax(clf.logits(x, false)));
      const teacher = MeanTeacher.of(vars);
      const student = await Promise.all(vars.map((v) => v.data()));
      tf.tidy(() => vars.forEach((v) => v.assign(tf.mul(v, 0.5))));
      const moved = await Promise.all(vars.map((v) => v.data()));
      const p = teacher.probs(clf, vars, x, false);
      assert.deepEqual(await p.data(), await before.data());
      assert.deepEqual(await Promise.all(vars.map((v) => v.data())), moved);
      assert.notDeepEqual(moved, student);
      teacher.dispose();
      tf.dispose([x, before, p]);
    });
  } finally {
    clf.dispose();
  }
});

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { HttpError, UnprocessableError, ValidationError } from "../../src/errors.ts";
import { attackSuccessRate } from "../../src/metrics/attack_success_rate.ts";
import { accuracy } from "../../src/metrics/accuracy.ts";
import { parseRoundParams } from "../../src/purify/params.ts";
import { runRound } from "../../src/purify/round.ts";
import { type PurifyState, sealState } from "../../src/purify/state.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import {
  backdooredClassifier,
  makeSet,
  roundTrip,
  TARGET,
  tinySchedule,
  triggered,
  weightsOf,
} from "./synthetic_backdoor.ts";

const extra = makeSet(240, 0.1, 2);
const test = makeSet(400, 0, 3);
const trig = triggered(test);
const params = parseRoundParams({ schedule: tinySchedule(), seed: 7 });
const unlimited = { maxSteps: 100_000, maxMs: 600_000 };

async function asrOf(clf: Awaited<ReturnType<typeof backdooredClassifier>>) {
  const r = await attackSuccessRate(clf, trig.images, TARGET, { sourceLabels: trig.source });
  return r.asr!;
}

/** A state as plain JSON, the way it crosses the wire. */
function wire(state: PurifyState): Record<string, unknown> {
  return JSON.parse(JSON.stringify(state));
}

async function expectError(
  p: Promise<unknown>,
  type: abstract new (...args: never[]) => HttpError,
  status: number,
) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err}`);
    assert.equal((err as HttpError).status, status);
    return true;
  });
}

Deno.test("runRound() removes a synthetic patch backdoor and keeps clean accuracy", async () => {
  await setupBackend();
  const clf = await backdooredClassifier();
  try {
    const before = await asrOf(clf);
    assert.ok(before > 0.9, `the synthetic backdoor works (ASR ${before})`);
    const r = await runRound(clf, extra.images, extra.labels, params, undefined, unlimited);
    assert.equal(r.done, true);
    assert.equal(r.report.progress, 1);
    assert.equal(r.report.suspect_class, TARGET);
    const after = await asrOf(clf);
    const acc = (await accuracy(clf, test.images, test.labels)).accuracy!;
    assert.ok(after < 0.1, `ASR after purification ${after}`);
    assert.ok(acc > 0.85, `clean accuracy after purification ${acc}`);
    const flagged = new Set(r.report.flagged_indices);
    const hits = [...flagged].filter((i) => extra.poisoned[i] === 1).length;
    assert.ok(hits >= 0.8 * 24, `most poisoned images are flagged (${hits} of 24)`);
  } finally {
    clf.dispose();
  }
});

Deno.test("a round never runs more units of work than maxSteps", async () => {
  const clf = await backdooredClassifier();
  try {
    let state: unknown;
    let done = 0;
    for (const budget of [3, 1, 5]) {
      const r = await runRound(clf, extra.images, extra.labels, params, state, {
        maxSteps: budget,
        maxMs: 600_000,
      });
      assert.equal(r.report.steps, budget);
      done += budget;
      assert.equal(r.state.steps_done, done);
      state = wire(r.state);
    }
  } finally {
    clf.dispose();
  }
});

Deno.test("params.max_steps tightens the service's step budget, never loosens it", async () => {
  const clf = await backdooredClassifier();
  try {
    const p = parseRoundParams({ schedule: tinySchedule(), max_steps: 2 });
    const r = await runRound(clf, extra.images, extra.labels, p, undefined, unlimited);
    assert.equal(r.report.steps, 2);
    const q = parseRoundParams({ schedule: tinySchedule(), max_steps: 50 });
    const s = await runRound(clf, extra.images, extra.labels, q, undefined, {
      maxSteps: 4,
      maxMs: 600_000,
    });
    assert.equal(s.report.steps, 4);
  } finally {
    clf.dispose();
  }
});

Deno.test("a round stops on its time budget after its first unit", async () => {
  const clf = await backdooredClassifier();
  try {
    const r = await runRound(clf, extra.images, extra.labels, params, undefined, {
      maxSteps: 100_000,
      maxMs: 1,
    });
    assert.equal(r.report.steps, 1, "the first unit always runs; no second fits in 1 ms");
    assert.equal(r.done, false);
    assert.ok(r.state.timing.init !== undefined, "the unit's duration travels in the state");
  } finally {
    clf.dispose();
  }
});

Deno.test("a round stops when its signal is aborted", async () => {
  const clf = await backdooredClassifier();
  try {
    const ctl = new AbortController();
    ctl.abort(new Error("client went away"));
    await assert.rejects(
      runRound(clf, extra.images, extra.labels, params, undefined, {
        ...unlimited,
        signal: ctl.signal,
      }),
      /client went away/,
    );
  } finally {
    clf.dispose();
  }
});

Deno.test("rounds resumed from saved state end exactly where an uninterrupted run ends", async () => {
  const whole = await backdooredClassifier();
  const total = 150; // through reconstruction, the probe, its revert and into purge
  const a = await runRound(whole, extra.images, extra.labels, params, undefined, {
    maxSteps: total,
    maxMs: 600_000,
  });
  let clf = await backdooredClassifier();
  let state: unknown;
  let b;
  for (let done = 0; done < total; done += 7) {
    b = await runRound(clf, extra.images, extra.labels, state ? {} : params, state, {
      maxSteps: Math.min(7, total - done),
      maxMs: 600_000,
    });
    state = wire(b.state);
    // The client saves the model and sends it back with the state.
    const next = await roundTrip(clf);
    clf.dispose();
    clf = next;
  }
  try {
    assert.deepEqual(b!.state.cursor, a.state.cursor);
    const [wa, wb] = [await weightsOf(whole), await weightsOf(clf)];
    let maxDiff = 0;
    for (let i = 0; i < wa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(wa[i] - wb[i]));
    assert.ok(maxDiff <= 1e-6, `weights differ by ${maxDiff}`);
    for (const key of ["membership", "scores", "trigger", "momentum", "infected_logits"] as const) {
      assert.deepEqual(b!.state[key], a.state[key], `state.${key}`);
    }
  } finally {
    whole.dispose();
    clf.dispose();
  }
});

Deno.test("a state written before round durations were named time_ms still opens", async () => {
  const clf = await backdooredClassifier();
  try {
    const first = await runRound(clf, extra.images, extra.labels, params, undefined, {
      maxSteps: 3,
      maxMs: 600_000,
    });
    // The history as states of before wrote it: `ms`, sealed over that content.
    const old = wire(first.state) as unknown as PurifyState;
    const legacy = old.history.map(({ time_ms, ...rest }) => ({ ...rest, ms: time_ms }));
    const sealed = wire(
      await sealState({ ...old, history: legacy as unknown as typeof old.history }),
    );
    assert.ok(!("time_ms" in (sealed.history as object[])[0]));
    const next = await runRound(clf, extra.images, extra.labels, {}, sealed, {
      maxSteps: 3,
      maxMs: 600_000,
    });
    assert.equal(next.state.history.length, 2);
    assert.equal(next.state.history[0].time_ms, first.state.history[0].time_ms);
    assert.equal(typeof next.report.time_ms, "number");
    assert.ok(next.state.history.every((h) => !("ms" in h)));
  } finally {
    clf.dispose();
  }
});

Deno.test("every round returns tf.memory().numTensors to its baseline", async () => {
  const clf = await backdooredClassifier();
  try {
    let state: unknown;
    // Budgets chosen to stop inside each phase: init, reconstruct, probe, scoring, train.
    for (const budget of [2, 60, 150, 5, 9, 30, 200]) {
      const r = await assertNoLeak(() =>
        runRound(clf, extra.images, extra.labels, state ? {} : params, state, {
          maxSteps: budget,
          maxMs: 600_000,
        })
      );
      state = wire(r.state);
      if (r.done) break;
    }
  } finally {
    clf.dispose();
  }
});

Deno.test("a tampered or foreign state is refused with a named 4xx error", async () => {
  const clf = await backdooredClassifier();
  try {
    // Far enough that the weights have moved (reconstruction alone leaves them as they were).
    const first = await runRound(clf, extra.images, extra.labels, params, undefined, {
      maxSteps: 220,
      maxMs: 600_000,
    });
    const good = wire(first.state);
    const run = (state: unknown, images = extra.images, labels = extra.labels, c = clf) =>
      runRound(c, images, labels, {}, state, unlimited);

    // Not an object, missing fields, unknown fields.
    await expectError(run("nope"), ValidationError, 400);
    await expectError(run({ ...good, cursor: undefined }), ValidationError, 400);
    await expectError(run({ ...good, extra: 1 }), ValidationError, 400);

    // An edited cursor breaks the checksum.
    const edited = structuredClone(good) as { cursor: { step: number } };
    edited.cursor.step += 1;
    await expectError(run(edited), ValidationError, 400);

    // Re-sealed by hand: the content checks still hold.
    const reseal = async (mutate: (s: PurifyState) => void) => {
      const s = structuredClone(good) as unknown as PurifyState;
      mutate(s);
      return wire(await sealState(s));
    };
    await expectError(
      run(await reseal((s) => (s.cursor.step = s.cursor.total + 1))),
      ValidationError,
      400,
    );
    await expectError(run(await reseal((s) => (s.cursor.stage = 99))), ValidationError, 400);
    await expectError(
      run(await reseal((s) => (s.infected_logits = s.infected_logits.slice(0, 40)))),
      ValidationError,
      400,
    );
    await expectError(
      run(await reseal((s) => (s.membership = btoa("\x05")))),
      ValidationError,
      400,
    );

    // Another dataset: same shape, one label changed.
    const otherLabels = extra.labels.slice();
    otherLabels[0] = (otherLabels[0] + 1) % 4;
    await expectError(run(good, extra.images, otherLabels), UnprocessableError, 422);

    // Another model: the original one instead of the one the round returned.
    const original = await backdooredClassifier();
    try {
      await expectError(run(good, extra.images, extra.labels, original), UnprocessableError, 422);
    } finally {
      original.dispose();
    }

    // A schedule or seed that contradicts the state.
    await expectError(
      runRound(
        clf,
        extra.images,
        extra.labels,
        parseRoundParams({ schedule: "published" }),
        good,
        unlimited,
      ),
      UnprocessableError,
      422,
    );
    await expectError(
      runRound(clf, extra.images, extra.labels, parseRoundParams({ seed: 8 }), good, unlimited),
      UnprocessableError,
      422,
    );
    // The untouched state still works.
    const ok = await run(good);
    assert.ok(ok.report.steps > 0);
  } finally {
    clf.dispose();
  }
});

Deno.test("runRound() refuses images and labels that do not fit the model", async () => {
  const clf = await backdooredClassifier();
  try {
    const wrong = {
      shape: [2, 4, 4, 1] as [number, number, number, number],
      data: new Float32Array(32),
    };
    await expectError(
      runRound(clf, wrong, new Int32Array(2), params, undefined, unlimited),
      HttpError,
      422,
    );
    await expectError(
      runRound(clf, extra.images, extra.labels.subarray(1), params, undefined, unlimited),
      HttpError,
      422,
    );
    const bad = extra.labels.slice();
    bad[3] = 9;
    await expectError(
      runRound(clf, extra.images, bad, params, undefined, unlimited),
      UnprocessableError,
      422,
    );
  } finally {
    clf.dispose();
  }
});

Deno.test("a finished purification stays done and reports it", async () => {
  const clf = await backdooredClassifier();
  try {
    const r = await runRound(clf, extra.images, extra.labels, params, undefined, unlimited);
    assert.equal(r.done, true);
    const again = await runRound(clf, extra.images, extra.labels, {}, wire(r.state), unlimited);
    assert.equal(again.done, true);
    assert.equal(again.report.steps, 0);
    assert.equal(again.state.history.length, 2);
    assert.ok(tf.memory().numTensors >= 0);
  } finally {
    clf.dispose();
  }
});

Deno.test("runRound() trains a Functional model with batch normalisation in both train modes", async () => {
  await setupBackend();
  const { fixtureBytes } = await import("../_helpers.ts");
  const { parseNpy } = await import("../../src/io/npy.ts");
  const { imagesFromNpy } = await import("../../src/io/images.ts");
  const { parseBundle } = await import("../../src/io/model_bundle.ts");
  const { loadClassifier } = await import("../../src/model/load_classifier.ts");
  const limits = { maxModelJsonBytes: 1e7, maxWeightBytes: 1e8, maxParams: 1e7, maxLayers: 100 };
  const images = imagesFromNpy(parseNpy(fixtureBytes("x.npy")), { maxImages: 100, maxPixels: 1e6 });
  const labels = Int32Array.from(parseNpy(fixtureBytes("y.npy")).data as Int32Array);
  for (const mode of ["inference", "train"] as const) {
    const clf = await loadClassifier(parseBundle(
      fixtureBytes("residual/model.json"),
      ["group1-shard1of2.bin", "group1-shard2of2.bin"].map((name) => ({
        name,
        bytes: fixtureBytes(`residual/${name}`),
      })),
      limits,
    ));
    try {
      const schedule = {
        train_mode: mode,
        suspect: { rule: "label_excess" },
        stages: [{
          kind: "train",
          name: "at",
          steps: 3,
          batch_size: 16,
          losses: { clean: 1, adversarial: 1 },
          pgd: { eps: 0.03, steps: 2 },
        }],
      };
      const before = await weightsOf(clf);
      const r = await assertNoLeak(() =>
        runRound(clf, images, labels, parseRoundParams({ schedule }), undefined, unlimited)
      );
      assert.equal(r.done, true);
      assert.equal(r.report.suspect_class, null, "balanced labels: no suspect");
      assert.notDeepEqual(await weightsOf(clf), before);
    } finally {
      clf.dispose();
    }
  }
});

Deno.test("the evidence phase finds the backdoor's target from the model when no label stands out", async () => {
  const clf = await backdooredClassifier();
  // A clean, balanced extra set: the labels say nothing about the target.
  const clean = makeSet(240, 0, 5);
  const schedule = {
    name: "evidence-only",
    score_batch_size: 64,
    suspect: {
      // Four classes make a weak reference for the anomaly index: Neural Cleanse's 2, not 3.
      evidence: {
        landing_per_class: 8,
        patch_steps: 60,
        additive_steps: 10,
        batch_size: 32,
        patch_threshold: 2,
      },
    },
    stages: [{ kind: "train", name: "noop", steps: 1, lr: 1e-6 }],
  };
  try {
    const r = await assertNoLeak(() =>
      runRound(
        clf,
        clean.images,
        clean.labels,
        parseRoundParams({ schedule, seed: 1 }),
        undefined,
        unlimited,
      )
    );
    assert.deepEqual(r.report.suspect_classes, [TARGET]);
    assert.equal(r.report.suspect_class, TARGET);
    const ev = r.report.evidence!;
    assert.equal(ev.length, 4);
    assert.ok(ev.every((e) => Math.abs(e.label_excess) < 0.2), "no label stands out");
    assert.ok(ev[TARGET].patch_success! > 0.9, "a tiny patch reaches the target");
    assert.ok(ev.filter((e) => e.class !== TARGET).every((e) => e.patch_success! < 0.7));
    const start = r.report.events.find((e) => e.event === "start")!;
    assert.equal(start.label_consistent, true);
    assert.deepEqual(start.stamps, [{ kind: "patch", target: TARGET }]);
  } finally {
    clf.dispose();
  }
});

import assert from "node:assert/strict";
import { RescoreSchema } from "../../src/purify/schedule.ts";
import {
  consistencyScores,
  initialMembership,
  otsuSplit,
  reselect,
  scopedSuspicion,
  suspectClass,
  suspicion,
} from "../../src/purify/selection.ts";
import { parseSchedule } from "../../src/purify/schedule.ts";
import { CLEAN, FLAGGED, POOL } from "../../src/purify/state.ts";

Deno.test("consistencyScores() is 1 for equal logits and drops by a half when the argmax moves", () => {
  const z0 = Float32Array.from([2, 1, 0, 2, 1, 0, 1, 2, 0]);
  const z = Float32Array.from([4, 2, 0, 1, 2, 0, 1, 2, 0]);
  const s = consistencyScores(z0, z, 3, 3);
  assert.ok(Math.abs(s[0] - 1) < 1e-6, "same direction, same class");
  const cos = (2 * 1 + 1 * 2) / (Math.hypot(2, 1) * Math.hypot(1, 2));
  assert.ok(Math.abs(s[1] - (0.5 + 0.5 * cos - 0.5)) < 1e-6, "argmax differs");
  assert.ok(Math.abs(s[2] - 1) < 1e-6);
});

Deno.test("otsuSplit() separates two clusters and reports low separation for one", () => {
  const two = [...Array(100)].map((_, i) => (i < 60 ? i / 100 : 5 + i / 100));
  const a = otsuSplit(two);
  assert.ok(a.cut > 0.6 && a.cut <= 5.6, `cut ${a.cut}`);
  assert.ok(a.separation > 0.95);
  // A bell shape: the split exists but explains under 3/4 of the variance.
  const bell = [...Array(2001)].map((_, i) =>
    Math.round(1000 * Math.exp(-(((i - 1000) / 300) ** 2) / 2))
  )
    .flatMap((count, i) => Array(count).fill(i));
  assert.ok(otsuSplit(bell).separation < 0.75);
  assert.deepEqual(otsuSplit([3, 3, 3]), { cut: Infinity, separation: 0 });
});

Deno.test("suspectClass() picks the label most over-represented, or none below min_excess", () => {
  const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3]);
  const r = suspectClass(labels, 4, { rule: "label_excess", min_excess: 0.2 });
  assert.equal(r.class, 0);
  assert.deepEqual(r.counts, [6, 2, 2, 2]);
  assert.equal(r.excess, 2);
  const even = Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]);
  assert.equal(suspectClass(even, 4, { rule: "label_excess", min_excess: 0.2 }).class, null);
  assert.equal(suspectClass(labels, 4, { rule: "none", min_excess: 0.2 }).class, null);
});

Deno.test("the first clean set leaves out the suspect class and the model's disagreements", () => {
  const labels = Int32Array.from([0, 1, 1, 2]);
  // Infected model predicts 0, 1, 2, 2.
  const z0 = Float32Array.from([5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 5]);
  const s = parseSchedule({ stages: [{ kind: "train", name: "t" }] });
  assert.deepEqual([...initialMembership(s, labels, z0, 3, [0], 1)], [POOL, CLEAN, POOL, CLEAN]);
  const r = parseSchedule({
    initial_clean: { rule: "random", fraction: 0.5 },
    stages: [{ kind: "train", name: "t" }],
  });
  const m = initialMembership(r, labels, z0, 3, [0], 1);
  assert.equal(m.filter((v) => v === CLEAN).length, 2);
  assert.deepEqual(m, initialMembership(r, labels, z0, 3, [0], 1), "seeded");
});

Deno.test("reselect() flags within the suspect class only and never lifts a flag", () => {
  // 12 images: 0-7 labelled 0 (suspect), 8-11 labelled 1. Images 0-3 lost the suspect's logit.
  const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
  const z0 = new Float32Array(24);
  const z = new Float32Array(24);
  for (let i = 0; i < 12; i++) {
    z0[2 * i + labels[i]] = 10;
    z[2 * i + labels[i]] = i < 4 ? 1 : 10;
    z[2 * i + 1] += i < 4 ? 5 : 0;
  }
  const rule = RescoreSchema.parse({
    score: "suspect_drop",
    flag: { rule: "split", max_fraction: 0.5 },
  });
  const membership = new Uint8Array(12);
  membership[11] = FLAGGED;
  const u = suspicion(rule.score, z0, z, labels, 2, [0]);
  const r = reselect(rule, u, z0, z, labels, membership, 2, [0]);
  assert.deepEqual([...r.membership], [2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2]);
  assert.equal(r.newlyFlagged, 4);
  assert.equal(r.bimodal, true);
  assert.deepEqual([...r.relabel.slice(0, 4)], [1, 1, 1, 1]);
  const scoped = scopedSuspicion(u, labels, rule, [0]);
  for (let i = 8; i < 12; i++) assert.ok(scoped[i] < Math.min(...scoped.slice(0, 8)));
});

Deno.test("reselect() flags nothing and keeps everyone clean when scores are not bimodal", () => {
  const labels = new Int32Array(50);
  const z0 = new Float32Array(100);
  const z = new Float32Array(100);
  const frac = (v: number) => v - Math.floor(v);
  for (let i = 0; i < 50; i++) {
    z0[2 * i] = 10;
    // A triangular (unimodal) spread of drops: Otsu's split explains only 2/3 of its variance.
    z[2 * i] = 10 - (frac(i * 0.618034) + frac(i * 0.4142136));
  }
  const rule = RescoreSchema.parse({ score: "suspect_drop" });
  const u = suspicion(rule.score, z0, z, labels, 2, [0]);
  const r = reselect(rule, u, z0, z, labels, new Uint8Array(50), 2, [0]);
  assert.equal(r.newlyFlagged, 0);
  assert.ok(r.membership.every((m) => m === CLEAN));
});

Deno.test("reselect() with fraction rules keeps the top share clean and flags the bottom share", () => {
  const n = 10;
  const labels = new Int32Array(n);
  const z0 = new Float32Array(2 * n).fill(1);
  const z = new Float32Array(2 * n).fill(1);
  const u = Float32Array.from({ length: n }, (_, i) => i); // image 9 most suspicious
  const rule = RescoreSchema.parse({
    scope: "all",
    clean: { rule: "fraction", fraction: 0.3 },
    flag: { rule: "fraction", fraction: 0.2 },
  });
  const r = reselect(rule, u, z0, z, labels, new Uint8Array(n), 2, []);
  assert.deepEqual([...r.membership], [1, 1, 1, 0, 0, 0, 0, 0, 2, 2]);
});

Deno.test("reselect() with the suspect-drop score flags nobody when no class is suspected", () => {
  // The same drops that flag four images when class 0 is suspected flag none without a suspect.
  const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
  const z0 = new Float32Array(24);
  const z = new Float32Array(24);
  for (let i = 0; i < 12; i++) {
    z0[2 * i + labels[i]] = 10;
    z[2 * i + labels[i]] = i < 4 ? 1 : 10;
    z[2 * i + 1] += i < 4 ? 5 : 0;
  }
  const rule = RescoreSchema.parse({ score: "suspect_drop", flag: { rule: "split" } });
  const u = suspicion(rule.score, z0, z, labels, 2, []);
  const r = reselect(rule, u, z0, z, labels, new Uint8Array(12), 2, []);
  assert.equal(r.newlyFlagged, 0);
  assert.equal(r.bimodal, false);
  assert.ok(r.membership.every((m) => m === CLEAN), "everyone stays in the clean set");
  const consistency = RescoreSchema.parse({ score: "consistency", flag: { rule: "split" } });
  const c = reselect(
    consistency,
    suspicion("consistency", z0, z, labels, 2, []),
    z0,
    z,
    labels,
    new Uint8Array(12),
    2,
    [],
  );
  assert.ok(c.newlyFlagged > 0, "the consistency score still flags without a suspect");
});

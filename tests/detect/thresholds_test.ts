import assert from "node:assert/strict";
import { flagByRule, fprCuts, otsuSplit } from "../../src/detect/thresholds.ts";
import { Rng } from "../../src/random/rng.ts";

/** K classes of n scores `loc_c + scale_c·draw()`, locations and scales random per class. */
function cleanScores(seed: number, k: number, n: number, draw: (r: Rng) => number) {
  const r = new Rng(seed, 11);
  const scores: number[] = [], labels: number[] = [];
  for (let c = 0; c < k; c++) {
    const loc = r.uniform(-5, 5), scale = r.uniform(0.2, 3);
    for (let i = 0; i < n; i++) {
      scores.push(loc + scale * draw(r));
      labels.push(c);
    }
  }
  return { scores, labels };
}

const flaggedShare = (flags: Uint8Array) => flags.reduce((a, b) => a + b, 0) / flags.length;

Deno.test("the fpr rule flags at most fpr of all-clean Gaussian scores", () => {
  for (const fpr of [0.01, 0.05, 0.1]) {
    for (let seed = 0; seed < 20; seed++) {
      const { scores, labels } = cleanScores(seed, 10, 200, (r) => r.normal());
      const share = flaggedShare(flagByRule(scores, labels, { rule: "fpr", fpr }).flags);
      assert.ok(share <= fpr, `seed ${seed}: flagged ${share} of clean scores at fpr ${fpr}`);
    }
  }
});

Deno.test("the fpr rule flags at most fpr of all-clean skewed (χ²₁) scores", () => {
  for (let seed = 0; seed < 20; seed++) {
    const { scores, labels } = cleanScores(seed, 10, 200, (r) => r.normal() ** 2);
    const share = flaggedShare(flagByRule(scores, labels, { rule: "fpr", fpr: 0.05 }).flags);
    assert.ok(share <= 0.05, `seed ${seed}: flagged ${share}`);
  }
});

Deno.test("the fpr rule catches a class that is half poison, as in all-to-one attacks", () => {
  const r = new Rng(4);
  const scores: number[] = [], labels: number[] = [], truth: number[] = [];
  for (let c = 0; c < 10; c++) {
    for (let i = 0; i < 200; i++) {
      const poisoned = c === 3 && i < 110;
      scores.push(c + (poisoned ? 4 + r.normal() : r.normal()));
      labels.push(c);
      truth.push(poisoned ? 1 : 0);
    }
  }
  const { flags } = flagByRule(scores, labels, { rule: "fpr", fpr: 0.05 });
  let tp = 0, fp = 0;
  flags.forEach((f, i) => (f ? (truth[i] ? tp++ : fp++) : 0));
  assert.ok(tp / 110 > 0.9, `recall ${tp / 110}`);
  assert.ok(fp / 1890 <= 0.05, `false-positive rate ${fp / 1890}`);
  const cuts = fprCuts(scores, labels, 0.05);
  assert.ok(cuts.classes[3].poisonShare > 0.3, "class 3 should be judged poisoned");
  assert.equal(cuts.classes.filter((k) => k.poisonShare > 0).length, 1);
});

Deno.test("the fpr rule catches a 10% poisoned class far above the first-pass count", () => {
  const r = new Rng(6);
  const scores: number[] = [], labels: number[] = [];
  for (let c = 0; c < 8; c++) {
    for (let i = 0; i < 200; i++) {
      scores.push(c === 0 && i < 20 ? 6 + r.normal() : r.normal());
      labels.push(c);
    }
  }
  const { flags } = flagByRule(scores, labels, { rule: "fpr", fpr: 0.05 });
  let caught = 0;
  for (let i = 0; i < 20; i++) caught += flags[i];
  assert.ok(caught >= 19, `caught ${caught} of 20`);
});

Deno.test("top_fraction flags round(fraction·n) per class and leaves boundary ties unflagged", () => {
  const scores = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5, 5, 5, 5];
  const labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
  const f = flagByRule(scores, labels, { rule: "top_fraction", fraction: 0.3 });
  assert.deepEqual([...f.flags.slice(0, 10)], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  assert.deepEqual([...f.flags.slice(10)], [0, 0, 0, 0]);
  assert.deepEqual(f.perClass.map((k) => k.flagged), [3, 0]);
});

Deno.test("mad flags robust z-scores above the cut within each class", () => {
  const scores = [0, 1, 2, 3, 4, 100, 10, 11, 12, 13, 14];
  const labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
  const f = flagByRule(scores, labels, { rule: "mad", cut: 3.5 });
  assert.deepEqual([...f.flags], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  assert.equal(f.threshold.rule, "mad");
});

Deno.test("no rule flags anything when every score is equal", () => {
  const scores = new Array(50).fill(1);
  const labels = new Array(50).fill(0);
  for (
    const rule of [
      { rule: "fpr", fpr: 0.05 },
      { rule: "mad", cut: 3.5 },
      { rule: "top_fraction", fraction: 0.2 },
    ] as const
  ) {
    assert.equal(flaggedShare(flagByRule(scores, labels, rule).flags), 0, rule.rule);
  }
});

Deno.test("otsuSplit() separates two modes and reports the upper share", () => {
  const s = Float64Array.from([...Array(60).fill(0), ...Array(40).fill(10)]).sort();
  const { eta, upperShare } = otsuSplit(s);
  assert.ok(eta > 0.99);
  assert.equal(upperShare, 0.4);
});

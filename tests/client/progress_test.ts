import assert from "node:assert/strict";
import { formatDuration, Progress } from "../../client/progress.ts";
import { runParallel } from "../../client/parallel.ts";
import { summaryTable } from "../../client/summary_table.ts";
import { testApp } from "../_helpers.ts";

const FIXTURE = new URL("../fixtures/tiny_cnn/", import.meta.url).pathname;

Deno.test("the progress bar never goes backwards and estimates the time left from this run's rounds", () => {
  let now = 0;
  const lines: string[] = [];
  const p = new Progress({ write: (t) => lines.push(t), tty: false, now: () => now });
  p.resumeAt(0.5);
  assert.equal(p.remainingS(), undefined, "no estimate before this process made progress");
  p.roundStarted(1);
  now = 10_000;
  p.roundDone(1, 0.76, "stage train");
  now = 20_000;
  p.roundStarted(2);
  p.roundDone(2, 0.75, "stage train");
  assert.equal(p.shown, 0.76);
  assert.match(lines[0], /\] +76% round 1 stage train \| elapsed 10s, ~9s left/);
  assert.match(lines[1], /\] +76% round 2/);
  assert.ok(Math.abs(p.remainingS()! - 20 * 0.24 / 0.26) < 1e-9);
  assert.equal(formatDuration(3725), "1h02m");
  assert.equal(formatDuration(185), "3m05s");
});

Deno.test("the summary table is a header and one padded row per run", () => {
  const [head, row] = summaryTable([{
    rounds: 12,
    done: true,
    acc: [0.9, 0.885],
    asr: [1, 0.012],
    rob: [undefined, 0.3],
    seconds: 192,
    where: "out/p/report.html",
  }]);
  assert.match(head, /^rounds +done +clean acc +attack success +robust acc +time +report$/);
  assert.match(row, /^12 +yes +90\.0% → 88\.5% +100\.0% → 1\.2% +— → 30\.0% +3m12s +out\/p/);
});

Deno.test("parallel purifications report each checkpointed round, in order, with monotonic progress", async () => {
  const app = await testApp();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const tmp = await Deno.makeTempDir();
  try {
    const seen: Record<string, [number, number][]> = {};
    const job = (name: string) => ({
      name,
      model: FIXTURE,
      images: `${FIXTURE}x.npy`,
      labels: `${FIXTURE}y.npy`,
      out: `${tmp}/${name}`,
      params: { max_steps: 2, seed: 1 },
    });
    const results = await runParallel([job("a"), job("b")], {
      server: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
      mode: "purify",
      concurrency: 2,
      maxRounds: 3,
      onRound: (name, round, progress) => (seen[name] ??= []).push([round, progress]),
    });
    assert.deepEqual(results.map((r) => r.rounds), [3, 3]);
    assert.ok(results.every((r) => r.report?.endsWith("report.html")));
    for (const name of ["a", "b"]) {
      assert.deepEqual(seen[name].map(([r]) => r), [0, 1, 2, 3]);
      const ps = seen[name].map(([, p]) => p);
      assert.deepEqual(ps, [...ps].sort((x, y) => x - y));
    }
  } finally {
    await server.shutdown();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("piped output writes a line every few seconds while a round runs, its estimate counting down", async () => {
  let now = 0;
  const lines: string[] = [];
  const p = new Progress({ write: (t) => lines.push(t), tty: false, now: () => now, everyMs: 15 });
  const tick = () => new Promise((r) => setTimeout(r, 60));
  try {
    p.roundStarted(1);
    await tick();
    assert.ok(lines.length >= 1, "lines while round 1 runs");
    assert.match(lines[0], /\] +0% round 1 running 0s \| elapsed 0s\n$/, "no estimate yet");
    now = 10_000;
    p.roundDone(1, 0.25, "stage evidence");
    const afterDone = lines.length;
    await tick();
    assert.equal(lines.length, afterDone, "nothing between rounds");
    assert.match(lines.at(-1)!, /25% round 1 stage evidence \| elapsed 10s, ~30s left\n$/);

    p.roundStarted(2);
    now = 15_000;
    await tick();
    const running = lines.slice(afterDone);
    assert.ok(running.length >= 2, `several lines while round 2 runs (${running.length})`);
    assert.match(running.at(-1)!, /25% round 2 running 5s \| elapsed 15s, ~25s left\n$/);
    now = 60_000; // past the estimate: it stops at zero rather than going negative
    await tick();
    assert.match(lines.at(-1)!, /round 2 running 50s \| elapsed 1m00s, ~0s left\n$/);
    p.roundDone(2, 0.2, "stage evidence");
    assert.match(lines.at(-1)!, /25% round 2 stage evidence/, "the bar does not go back");
    const percents = lines.map((l) => Number(l.match(/(\d+)%/)![1]));
    assert.deepEqual(percents, [...percents].sort((a, b) => a - b), "monotonic");
    assert.ok(lines.every((l) => l.endsWith("\n") && !l.includes("\r")), "whole lines, no \\r");
  } finally {
    p.stop();
  }
  const stopped = lines.length;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(lines.length, stopped, "stop() ends the ticking");
});

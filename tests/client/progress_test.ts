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

import assert from "node:assert/strict";
import { SaturatedError } from "../../src/errors.ts";
import { EngineQueue } from "../../src/http/engine_queue.ts";

Deno.test("EngineQueue with two slots runs two jobs at once, queues the third and sheds the fourth", async () => {
  const q = new EngineQueue(1, 3, 2);
  const releases: (() => void)[] = [];
  const hold = () => new Promise<void>((r) => releases.push(r));
  const a = q.run(hold);
  const b = q.run(hold);
  await Promise.resolve();
  assert.equal(q.running, 2);
  assert.equal(releases.length, 2, "both jobs started");
  const c = q.run(hold);
  assert.equal(q.waiting, 1);
  await assert.rejects(q.run(hold), (e: SaturatedError) => e.retryAfterS === 3);
  releases[0]();
  await a;
  for (let i = 0; i < 10 && releases.length < 3; i++) await Promise.resolve();
  assert.equal(releases.length, 3, "the queued job took the freed slot");
  assert.equal(q.running, 2);
  releases[1]();
  releases[2]();
  await Promise.all([b, c]);
  assert.equal(q.running, 0);
  assert.equal(q.busy, false);
});

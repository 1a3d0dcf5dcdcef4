import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { apgd } from "../../src/attacks/apgd.ts";
import { EarlyStop } from "../../src/attacks/early_stop.ts";
import { mifgsm } from "../../src/attacks/mifgsm.ts";
import { pgd } from "../../src/attacks/pgd.ts";
import { assertNoLeak, setupBackend } from "../_helpers.ts";
import { testBatch, trainedCnn } from "./_fixtures.ts";

const flag = (v: boolean) => tf.scalar(v, "bool");

Deno.test("EarlyStop answers with the current flag, or lagged by one step on GPU backends", async () => {
  await setupBackend();
  await assertNoLeak(async () => {
    const now = new EarlyStop(false);
    assert.equal(await now.proceed(flag(true)), true);
    assert.equal(await now.proceed(flag(false)), false);
    const lag = new EarlyStop(true);
    assert.equal(await lag.proceed(flag(false)), true);
    assert.equal(await lag.proceed(flag(false)), false);
    await lag.settle();
  });
});

Deno.test("attacks give the same result whether early-stop reads are lagged or not", async () => {
  const clf = await trainedCnn();
  const { x, y } = testBatch(20);
  const runs = [
    () => pgd(clf, x, y, { eps: 0.08, steps: 10 }),
    () => mifgsm(clf, x, y, { eps: 0.08, steps: 10 }),
    () => apgd(clf, x, y, { eps: 0.08, steps: 20 }),
    () => pgd(clf, x, y, { eps: 0.5, steps: 10 }),
  ];
  try {
    for (const run of runs) {
      const out: Float32Array[] = [];
      const queries: number[] = [];
      for (const force of [false, true]) {
        EarlyStop.force = force;
        await assertNoLeak(async () => {
          const res = await run();
          out.push(await res.adversarial.data() as Float32Array);
          queries.push(res.queries);
          res.adversarial.dispose();
        });
      }
      assert.deepEqual(out[0], out[1]);
      // Lagging costs at most one extra step of the batch.
      assert.ok(queries[1] - queries[0] <= 20, `${queries}`);
    }
  } finally {
    EarlyStop.force = undefined;
    tf.dispose([x, y]);
  }
});

/**
 * Every curl example of the API reference (`/docs`, the OpenAPI document's `x-codeSamples`) runs
 * as written from the root of a copy of the repository against a live `deno task start`, with
 * only `localhost:8000` pointed at the test's port (see `forService`), and succeeds.
 */
import assert from "node:assert/strict";
import { EXAMPLES } from "../../src/http/examples.ts";
import { forService, runBash, startService, tempRepo } from "./_live.ts";

Deno.test({
  name: "every curl example of /docs works as written against a live service",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await tempRepo();
    const service = await startService(dir);
    const times: string[] = [];
    try {
      for (const [key, example] of Object.entries(EXAMPLES)) {
        const ran = await runBash(forService(example, service.port), dir);
        assert.equal(ran.code, 0, `${key} failed:\n${example}\n---\n${ran.output.slice(-2000)}`);
        times.push(`${key} ${ran.seconds.toFixed(1)} s`);
      }
      // What the examples wrote is what they say.
      const adv = await Deno.readFile(`${dir}/out/adversarial.npy`);
      assert.equal(String.fromCharCode(...adv.subarray(1, 6)), "NUMPY");
      const state = JSON.parse(await Deno.readTextFile(`${dir}/out/round1/state.json`));
      assert.ok(state && typeof state === "object");
      assert.match(await Deno.readTextFile(`${dir}/out/docs.html`), /<table/);
      console.log(times.join("\n"));
    } finally {
      await service.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("an example that fails makes the runner fail (a 4xx is not a saved reply)", async () => {
  const dir = await tempRepo();
  const service = await startService(dir);
  try {
    const bad = EXAMPLES["POST /v1/detect"].replace('"spectral"', '"no-such-method"');
    const ran = await runBash(forService(bad, service.port), dir);
    assert.notEqual(ran.code, 0);
    assert.match(ran.output, /no-such-method|invalid/);
  } finally {
    await service.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A fingerprint of one whole purification, to compare two trees bit for bit (a refactor must not
 * change it): the synthetic backdoor of `tests/purify/` purified with the tests' tiny schedule
 * (evidence, reconstruction, a three-rate probe, purge, a mean-teacher stage), seed 7, in rounds
 * of 7 units with the model saved and reloaded between rounds, by the code under ROOT. Prints
 * SHA-256 of the final state less its timings, of its history less durations, and of the
 * weights.
 *
 *   BACKEND=wasm deno run -A --config deno.json bench/round_fingerprint.ts /path/to/tree
 */
const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname;
const sb = await import(`${root}/tests/purify/synthetic_backdoor.ts`);
const { runRound } = await import(`${root}/src/purify/round.ts`);
const { parseRoundParams } = await import(`${root}/src/purify/params.ts`);
const { canonicalJson, sha256Hex } = await import(`${root}/src/purify/codec.ts`);
const { setupBackend } = await import(`${root}/tests/_helpers.ts`);
await setupBackend();
const extra = sb.makeSet(240, 0.1, 2);
const params = parseRoundParams({ schedule: sb.tinySchedule(), seed: 7 });
let clf = await sb.backdooredClassifier();
let state: unknown;
const rounds: unknown[] = [];
for (let done = 0; done < 400; done += 7) {
  const r = await runRound(clf, extra.images, extra.labels, state ? {} : params, state, {
    maxSteps: 7,
    maxMs: 600_000,
  });
  state = JSON.parse(JSON.stringify(r.state));
  rounds.push(r.report.events);
  const next = await sb.roundTrip(clf);
  clf.dispose();
  clf = next;
  if (r.done) break;
}
const s = state as Record<string, unknown>;
const { timing: _t, history, checksum: _c, ...det } = s;
const hist = (history as Record<string, unknown>[]).map((
  { ms: _m, time_ms: _tm, events, ...h },
) => ({
  ...h,
  events: (events as Record<string, unknown>[]).map(({ ms: _a, time_ms: _b, ...e }) => e),
}));
const enc = (v: unknown) => new TextEncoder().encode(canonicalJson(v));
const w = await sb.weightsOf(clf);
console.log(JSON.stringify({
  cursor: s.cursor,
  state: await sha256Hex(enc(det)),
  history: await sha256Hex(enc(hist)),
  weights: await sha256Hex(new Uint8Array(w.buffer)),
}));

/**
 * The README's shell blocks cannot rot: its first session with curl (the blocks fenced as
 * ```` ```sh session ````) and its reference examples (```` ```sh example ````) run with bash, in
 * that order, from the root of a copy of the repository, against a live `deno task start`.
 *
 * Two substitutions, and only these: `localhost:8000` becomes the test's port, and the lab's
 * `--quick` gets smaller sizes after it (`LAB_SIZE`: size flags given with `--quick` win), so
 * the session takes about a minute and a half on 2 cores instead of four. `curl` fails on an HTTP
 * error (`--fail-with-body`), so an error body cannot pass as a saved reply. Every other word
 * runs as written; a `curl` in a block that is neither session nor example fails the test, so
 * no untested curl command can enter the README.
 *
 * Needs Debian's Fashion-MNIST (`dataset-fashion-mnist`, which CI installs), as the README says.
 * It runs on the wasm backend (the README's CPU path) only: CI's second pass on the pure-JS cpu
 * backend would take many minutes over the same words, and test nothing new about them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hasFashionMnist } from "../../scripts/demo.ts";
import { forService, ROOT, runBash, startService, tempRepo } from "./_live.ts";

/** What the test adds after the README's `--quick`. */
export const LAB_SIZE = "--train 2000 --extra 200 --test 200";

export interface Block {
  kind: "session" | "example" | "other";
  text: string;
  line: number;
}

/** The fenced `sh` blocks of a Markdown text, with their kind (the fence's second word). */
export function shellBlocks(markdown: string): Block[] {
  const out: Block[] = [];
  const re = /^```(?:sh|bash)(?: +(\w+))?\n([\s\S]*?)^```$/gm;
  for (const m of markdown.matchAll(re)) {
    const kind = m[1] === "session" || m[1] === "example" ? m[1] : "other";
    out.push({ kind, text: m[2], line: markdown.slice(0, m.index).split("\n").length });
  }
  return out;
}

const readme = Deno.readTextFileSync(join(ROOT, "README.md"));

Deno.test("the README's shell blocks are found, and every curl is in a block that a test runs", () => {
  const blocks = shellBlocks(readme);
  const session = blocks.filter((b) => b.kind === "session");
  assert.ok(session.length >= 5, `${session.length} session blocks`);
  const script = session.map((b) => b.text).join("\n");
  for (const needle of ["/v1/detect", "/v1/attacks", "/v1/evaluate", "deno task unpack"]) {
    assert.ok(script.includes(needle), `the session uses ${needle}`);
  }
  assert.equal(script.match(/\/v1\/purify\/rounds/g)?.length, 2, "two purification rounds");
  assert.match(script, /-F state=@out\/session\/round1\/state\.json/, "round 2 sends the state");
  assert.match(script, /deno task lab -- --quick /, "the session's lab is the quick one");
  for (const b of blocks.filter((b) => b.kind === "other")) {
    assert.doesNotMatch(b.text, /\bcurl /, `README line ${b.line}: a curl block no test runs`);
  }
  // The parser sees a block's kind, so a mislabelled fence does not slip through.
  assert.deepEqual(
    shellBlocks("```sh session\na\n```\n```sh\ncurl x\n```\n```bash example\nb\n```\n").map((
      b,
    ) => [b.kind, b.text]),
    [["session", "a\n"], ["other", "curl x\n"], ["example", "b\n"]],
  );
});

Deno.test({
  name: "the README's session and examples run as pasted against a live service",
  ignore: !(await hasFashionMnist()) || (Deno.env.get("BACKEND") ?? "wasm") !== "wasm",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const blocks = shellBlocks(readme).filter((b) => b.kind !== "other");
    const dir = await tempRepo();
    const service = await startService(dir);
    const times: string[] = [];
    try {
      for (
        const b of blocks.sort((a, c) => (a.kind === c.kind ? 0 : a.kind === "session" ? -1 : 1))
      ) {
        const script = forService(b.text, service.port).replace(
          "deno task lab -- --quick ",
          `deno task lab -- --quick ${LAB_SIZE} `,
        );
        const ran = await runBash(script, dir);
        assert.equal(
          ran.code,
          0,
          `README line ${b.line} (${b.kind}) failed:\n${b.text}\n---\n${ran.output.slice(-3000)}`,
        );
        times.push(`${b.kind} block at README line ${b.line}: ${ran.seconds.toFixed(1)} s`);
      }
      const read = (p: string) => JSON.parse(Deno.readTextFileSync(join(dir, "out/session", p)));
      const detect = read("detect.json");
      assert.equal(detect.method, "pud");
      assert.equal(detect.n, 200);
      assert.ok(detect.metrics.auroc !== null, "the ground truth was used");
      assert.equal(read("round1/report.json").round, 1);
      const round2 = read("round2/report.json");
      assert.equal(round2.round, 2, "round 2 accepted round 1's model, weights and state");
      assert.ok(round2.progress > read("round1/report.json").progress);
      for (const f of ["before.json", "after.json"]) {
        const e = read(f);
        assert.ok(e.clean_accuracy > 0.3 && e.attack_success_rate !== undefined, f);
      }
      const adv = Deno.readFileSync(join(dir, "out/session/attack/adversarial.npy"));
      assert.equal(String.fromCharCode(...adv.subarray(1, 6)), "NUMPY");
      console.log(times.join("\n"));
    } finally {
      await service.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

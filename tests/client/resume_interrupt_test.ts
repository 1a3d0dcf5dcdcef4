import assert from "node:assert/strict";
import { testApp } from "../_helpers.ts";

const ROOT = new URL("../../", import.meta.url);
const FIXTURE = new URL("../fixtures/tiny_cnn/", import.meta.url).pathname;

/** The client's command line against `server`, writing to `out`, with `extra` options. */
function clientArgs(server: string, out: string, extra: string[]): string[] {
  return [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env=API_TOKEN",
    "client/purify.ts",
    "--server",
    server,
    "--model",
    FIXTURE,
    "--images",
    `${FIXTURE}x.npy`,
    "--labels",
    `${FIXTURE}y.npy`,
    "--out",
    out,
    ...extra,
  ];
}

async function runClient(server: string, out: string, extra: string[]) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: clientArgs(server, out, extra),
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** An in-process service on a loopback port for the client subprocess; `fn` gets its URL. */
async function withService(fn: (url: string) => Promise<void>): Promise<void> {
  const app = await testApp();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const tmp = await Deno.makeTempDir();
  try {
    await fn(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`);
  } finally {
    await server.shutdown();
    await Deno.remove(tmp, { recursive: true });
  }
}

async function checkpointRound(out: string): Promise<number | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${out}/checkpoint/checkpoint.json`)).round;
  } catch {
    return undefined;
  }
}

Deno.test("the client refuses to resume a checkpoint made with other options, naming each, unless --force-resume", async () => {
  await withService(async (url) => {
    const out = await Deno.makeTempDir();
    try {
      const first = await runClient(url, out, [
        "--params",
        '{"max_steps":2,"seed":1}',
        "--max-rounds",
        "1",
      ]);
      assert.equal(first.code, 0, first.stderr);
      // The end is a summary table, not JSON.
      const [head, row] = first.stdout.trim().split("\n");
      assert.match(
        head,
        /^rounds\s+done\s+clean acc\s+attack success\s+robust acc\s+time\s+report/,
      );
      assert.match(row, /^1\s+no\s+/);
      assert.match(first.stderr, /\] +\d+% round 1 stage .* \| elapsed \d+s/);

      const changed = await runClient(url, out, [
        "--params",
        '{"max_steps":2,"seed":2}',
        "--schedule",
        "published",
        "--max-rounds",
        "2",
      ]);
      assert.equal(changed.code, 2, changed.stderr);
      assert.match(changed.stderr, /holds a checkpoint \(after round 1\) made with other options/);
      assert.match(changed.stderr, /schedule: "default" in the checkpoint, "published" now/);
      assert.match(changed.stderr, /seed: 1 in the checkpoint, 2 now/);
      assert.match(changed.stderr, /--force-resume/);
      assert.equal(await checkpointRound(out), 1, "a refused resume changes nothing");

      // Per-round budgets may change on resume; --force-resume accepts the rest.
      const budget = await runClient(url, out, [
        "--params",
        '{"max_steps":3,"seed":1}',
        "--max-rounds",
        "2",
      ]);
      assert.equal(budget.code, 0, budget.stderr);
      assert.match(budget.stderr, /resuming after round 1/);
      const forced = await runClient(url, out, [
        "--params",
        '{"max_steps":2,"seed":2}',
        "--max-rounds",
        "3",
        "--force-resume",
      ]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(await checkpointRound(out), 3);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
});

Deno.test("Ctrl-C stops the client with 'interrupted after round N; rerun the same command to resume' and exit 130", async () => {
  await withService(async (url) => {
    const out = await Deno.makeTempDir();
    try {
      const args = clientArgs(url, out, ["--params", '{"max_steps":2,"seed":1}']);
      const interruptAfterRound = async (min: number) => {
        const child = new Deno.Command(Deno.execPath(), {
          args,
          cwd: ROOT,
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const output = child.output();
        for (let i = 0; i < 1200 && ((await checkpointRound(out)) ?? -1) < min; i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        child.kill("SIGINT");
        const o = await output;
        return { code: o.code, stderr: new TextDecoder().decode(o.stderr) };
      };
      const first = await interruptAfterRound(1);
      assert.equal(first.code, 130, first.stderr);
      const n = await checkpointRound(out);
      assert.ok(n !== undefined && n >= 1);
      assert.ok(
        first.stderr.includes(`interrupted after round ${n}; rerun the same command to resume`),
        first.stderr,
      );
      // The same command resumes from that checkpoint.
      const again = await interruptAfterRound(n + 1);
      assert.match(again.stderr, new RegExp(`resuming after round ${n} from`));
      assert.equal(again.code, 130);
      const bars = [...again.stderr.matchAll(/\] +(\d+)% round/g)].map((m) => Number(m[1]));
      assert.deepEqual(bars, [...bars].sort((a, b) => a - b), "progress never goes backwards");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
});

/**
 * What the README and docs tests share: a throwaway copy of the repository (its code, tasks and
 * fixtures; `node_modules` linked, not copied) so that commands which write under `out/` do not
 * touch a developer's own `out/`, a live `deno task start` service in it on a free port, and a
 * runner for shell snippets that times each one.
 */
import { join } from "node:path";

export const ROOT = new URL("../../", import.meta.url).pathname;

/** What a command of the README or the docs needs from the repository. */
const COPIED = ["deno.json", "deno.lock", "src", "routes", "scripts", "client", "tests/fixtures"];

/** A copy of the repository under a new temp folder; remove it with `Deno.remove(dir, {recursive})`. */
export async function tempRepo(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "purifier-readme-" });
  for (const p of COPIED) {
    await Deno.mkdir(join(dir, p, ".."), { recursive: true });
    const cp = new Deno.Command("cp", { args: ["-R", join(ROOT, p), join(dir, p)] });
    const r = await cp.output();
    if (!r.success) throw new Error(`cp ${p}: ${new TextDecoder().decode(r.stderr)}`);
  }
  await Deno.symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

export interface Service {
  port: number;
  /** Stops the service and returns what it wrote. */
  stop(): Promise<string>;
}

/** `deno task start` in `dir`, on a free loopback port, once `/readyz` answers 200. */
export async function startService(dir: string): Promise<Service> {
  // A port the OS just handed out and took back: free, unlike a random guess.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "start"],
    cwd: dir,
    env: {
      PORT: String(port),
      HOST: "127.0.0.1",
      BACKEND: Deno.env.get("BACKEND") ?? "wasm",
      LOG_REQUESTS: "false",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]).then(([a, b]) => a + b);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    return await output;
  };
  for (let i = 0; i < 600; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (res) {
      await res.body?.cancel();
      if (res.status === 200) return { port, stop };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the service did not become ready within 60 s:\n${await stop()}`);
}

/**
 * The one change a snippet's text gets before it runs: `localhost:8000` becomes the test's
 * service; its own words are otherwise run as written.
 */
export function forService(snippet: string, port: number): string {
  return snippet.replaceAll("localhost:8000", `127.0.0.1:${port}`);
}

/**
 * Before every script: stop at the first failing command, and make `curl` fail on an HTTP error
 * (`--fail-with-body`), so a 4xx cannot pass as a saved reply.
 */
const PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n';

export interface Ran {
  code: number;
  output: string;
  seconds: number;
}

/** Runs `script` with bash in `dir` (deno on PATH), returning its exit code, output and time. */
export async function runBash(script: string, dir: string): Promise<Ran> {
  const t0 = performance.now();
  const bin = Deno.execPath().replace(/\/[^/]+$/, "");
  const r = await new Deno.Command("bash", {
    args: ["-c", PRELUDE + script],
    cwd: dir,
    env: { PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: r.code,
    output: dec.decode(r.stdout) + dec.decode(r.stderr),
    seconds: (performance.now() - t0) / 1000,
  };
}

import assert from "node:assert/strict";
import { ConfigSchema } from "../../src/config.ts";
import { fixtureForm } from "../_helpers.ts";

const ROOT = new URL("../../", import.meta.url);
const tasks = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT))).tasks;

/** The permission flags of a `deno run ... src/main.ts` task. */
function flags(task: string): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (const m of task.matchAll(/--(allow-[a-z]+|all|A)(?:=(\S+))?/g)) out.set(m[1], m[2] ?? true);
  return out;
}

Deno.test("deno task start runs with named permissions only: net, its own files, its own variables", () => {
  for (const name of ["start", "dev"]) {
    const f = flags(tasks[name]);
    assert.ok(!/\s-A\b|--allow-all/.test(tasks[name]), `${name} must not use -A`);
    assert.deepEqual([...f.keys()].sort(), ["allow-env", "allow-net", "allow-read"], name);
    assert.deepEqual(
      String(f.get("allow-read")).split(",").sort(),
      ["./node_modules", "./routes", "./src"],
    );
    // Every variable the config reads, and nothing else: a new setting must be added here too.
    assert.deepEqual(
      String(f.get("allow-env")).split(",").sort(),
      Object.keys(ConfigSchema.shape).sort(),
      `${name}: --allow-env must list exactly the config's variables`,
    );
  }
  const docker = Deno.readTextFileSync(new URL("Dockerfile", ROOT));
  assert.match(docker, /CMD \["deno", "task", "start"\]/);
  assert.match(docker, /^USER purifier$/m);
});

Deno.test("deno task start serves /readyz and a prediction under those permissions", async () => {
  // A port the OS just handed out and took back: free, unlike a random guess.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "start"],
    cwd: ROOT,
    env: { PORT: String(port), HOST: "127.0.0.1", BACKEND: "wasm", LOG_REQUESTS: "false" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  try {
    let ready: Response | undefined;
    for (let i = 0; i < 300 && !ready; i++) {
      ready = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ready, "the service did not come up within 30 s");
    assert.equal((await ready.json()).backend.name, "wasm");
    const res = await fetch(`http://127.0.0.1:${port}/v1/predict`, {
      method: "POST",
      body: fixtureForm({ params: { top_k: 1 } }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).predictions.length, 64);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    const [out, err] = await output;
    assert.ok(!/NotCapable|PermissionDenied|Requires .* access/.test(out + err), out + err);
  }
});

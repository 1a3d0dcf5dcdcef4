/**
 * Runs the service as a child process on a free loopback port, for the demo and for tests that
 * want the real HTTP stack: `deno run` on src/main.ts directly (not `deno task`, whose shell
 * would leave the server orphaned when only the task process is killed).
 */
import { fileURLToPath } from "node:url";

export interface LocalService {
  url: string;
  /** Where the server's stdout and stderr go. */
  logPath: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
}

/** A port the OS says is free now (bound and released; a race with another process is possible). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Starts `src/main.ts` with `env` (BACKEND defaults to the caller's, else wasm; request logs off)
 * and resolves once `GET /readyz` answers 200, or throws after `timeoutMs` with the log's tail.
 */
export async function startLocalService(opts: {
  env?: Record<string, string>;
  logPath: string;
  timeoutMs?: number;
}): Promise<LocalService> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const port = freePort();
  const log = await Deno.open(opts.logPath, { create: true, write: true, truncate: true });
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      "src/main.ts",
    ],
    cwd: root,
    env: {
      BACKEND: Deno.env.get("BACKEND") ?? "wasm",
      LOG_REQUESTS: "false",
      ...opts.env,
      PORT: String(port),
      HOST: "127.0.0.1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const sink = log.writable.getWriter();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) await sink.write(chunk);
  };
  const pumped = Promise.all([pump(proc.stdout), pump(proc.stderr)]).finally(() =>
    sink.close().catch(() => {})
  );
  let exited = false;
  const status = proc.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      try {
        proc.kill("SIGTERM");
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        if (!exited) proc.kill("SIGKILL");
      }, 5000);
      await status;
      clearTimeout(timer);
    }
    await pumped;
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const r = await fetch(`${url}/readyz`);
      await r.body?.cancel();
      if (r.ok) return { url, logPath: opts.logPath, stop };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop();
  const tail = (await Deno.readTextFile(opts.logPath).catch(() => "")).slice(-2000);
  throw new Error(
    `the service did not become ready${
      exited ? " (it exited)" : ""
    }; log ${opts.logPath}:\n${tail}`,
  );
}

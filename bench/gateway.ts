/**
 * Gateway test: nginx (Debian's) in front of service replicas on loopback ports, several
 * purification jobs through it at once (the client's parallel mode), one replica killed mid-run.
 *
 * 1. Trains the tiny synthetic backdoored model (tests/purify/synthetic_backdoor.ts) and writes it
 *    with its extra set to a temporary folder.
 * 2. Reference: the jobs through nginx over 1 replica, then over 2 replicas (throughput for each).
 * 3. Kill: the same jobs over 2 replicas, one replica SIGKILLed once a third of the rounds are
 *    done. Every job must complete, and each job's purified weights must equal the reference's
 *    byte for byte (rounds are deterministic and stateless, so a retried round gives the same
 *    result).
 *
 * nginx retries a failed POST on the other replica only when told to (`non_idempotent`); every
 * endpoint here is a pure computation, so `--nginx-retry on` (the default) lets nginx resend a
 * request whose replica died before answering, and the client's own retries (backoff on 5xx and
 * network errors) cover the rest. `--nginx-retry off` shows the client alone doing it.
 *
 *   apt-get install -y nginx
 *   deno run -A bench/gateway.ts [--jobs 4] [--images 960] [--batch 128] [--max-steps 40] [--nginx-retry on|off]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { encodeNpy } from "../src/io/npy.ts";
import { makeSet, tinySchedule, trainedBundle } from "../tests/purify/synthetic_backdoor.ts";
import { type JobResult, type ParallelJob, runParallel } from "../client/parallel.ts";

const { values: a } = parseArgs({
  options: {
    jobs: { type: "string", default: "4" },
    images: { type: "string", default: "960" },
    batch: { type: "string", default: "128" },
    "max-steps": { type: "string", default: "40" },
    "nginx-retry": { type: "string", default: "on" },
    "kill-at": { type: "string", default: "0.33" },
    keep: { type: "boolean", default: false },
  },
});
const JOBS = Number(a.jobs);
const ROOT = new URL("../", import.meta.url);
const dir = await Deno.makeTempDir({ prefix: "purifier-gateway-" });
const rand = () => 20000 + Math.floor(Math.random() * 20000);
const PORTS = [rand(), rand() + 1];
const GW = rand() + 2;

// --- data ------------------------------------------------------------------------------------
const bundle = await trainedBundle();
const extra = makeSet(Number(a.images), 0.1, 2);
await Deno.mkdir(join(dir, "model"));
await Deno.writeFile(join(dir, "model", "model.json"), bundle.modelJson);
for (const w of bundle.weights) await Deno.writeFile(join(dir, "model", w.name), w.bytes);
await Deno.writeFile(
  join(dir, "x.npy"),
  encodeNpy({ dtype: "float32", shape: extra.images.shape, data: extra.images.data }),
);
await Deno.writeFile(
  join(dir, "y.npy"),
  encodeNpy({ dtype: "int32", shape: [extra.labels.length], data: extra.labels }),
);

/** The tests' tiny schedule with batches of `--batch` and 7-step PGD: enough work per round that
 * compute, not HTTP, dominates. */
function schedule() {
  const s = tinySchedule();
  const batch = Number(a.batch);
  return {
    ...s,
    stages: s.stages.map((st) => ({
      ...st,
      batch_size: batch,
      ...("pgd" in st ? { pgd: { ...st.pgd, steps: 7 } } : {}),
    })),
  };
}

function jobs(run: string): ParallelJob[] {
  return Array.from({ length: JOBS }, (_, i) => ({
    name: `job${i}`,
    model: join(dir, "model"),
    images: join(dir, "x.npy"),
    labels: join(dir, "y.npy"),
    out: join(dir, run, `job${i}`),
    // Different seeds: different work per job, each reproducible.
    params: { schedule: schedule(), seed: i + 1, max_steps: Number(a["max-steps"]) },
  }));
}

// --- replicas and nginx ----------------------------------------------------------------------
/** `deno task start`'s own command line, run directly so that its pid is the server's. */
const startArgs: string[] = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)))
  .tasks.start.split(/\s+/).slice(1);

function startReplica(port: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: startArgs,
    cwd: ROOT,
    env: { PORT: String(port), HOST: "127.0.0.1", LOG_REQUESTS: "false", BACKEND: "wasm" },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready`);
}

function nginxConf(ports: number[]): string {
  const retry = a["nginx-retry"] === "on";
  return `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx_error.log warn;
events { worker_connections 256; }
http {
  access_log ${dir}/nginx_access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream purifier {
    least_conn;
${ports.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=30s;`).join("\n")}
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${GW};
    # MAX_BODY_BYTES (256 MiB) and REQUEST_TIMEOUT_MS (600 s) plus a margin.
    client_max_body_size 256m;
    client_body_buffer_size 1m;
    proxy_request_buffering on;
    proxy_read_timeout 660s;
    proxy_send_timeout 660s;
    proxy_connect_timeout 2s;
    location / {
      proxy_pass http://purifier;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Request-Id $request_id;
      ${
    retry
      ? `proxy_next_upstream error http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 2;`
      : "proxy_next_upstream off;"
  }
    }
  }
}`;
}

async function withGateway<T>(ports: number[], fn: () => Promise<T>): Promise<T> {
  const conf = join(dir, `nginx_${ports.length}.conf`);
  await Deno.writeTextFile(conf, nginxConf(ports));
  const nginx = new Deno.Command("nginx", { args: ["-c", conf, "-g", "daemon off;"] }).spawn();
  try {
    await waitReady(`http://127.0.0.1:${GW}/healthz`);
    return await fn();
  } finally {
    // Fast shutdown: a graceful one waits for the client's idle keep-alive connections.
    nginx.kill("SIGTERM");
    await nginx.status;
  }
}

interface RunReport {
  run: string;
  replicas: number;
  wall_s: number;
  rounds: number;
  rounds_per_s: number;
  failed: number;
  retries: number;
  results: JobResult[];
}

async function runJobs(run: string, replicas: number, killAfter?: () => void): Promise<RunReport> {
  let retries = 0;
  const totalRounds = Number(killAfter ? expectedRounds : 0);
  const t0 = performance.now();
  const js = jobs(run);
  const progress = killAfter
    ? setInterval(async () => {
      // Rounds done so far, from the jobs' checkpoints.
      let n = 0;
      for (const j of js) {
        const ck = await Deno.readTextFile(join(j.out!, "checkpoint", "checkpoint.json")).catch(
          () => undefined,
        );
        if (ck) n += JSON.parse(ck).round;
      }
      if (killAfter && n >= totalRounds * Number(a["kill-at"])) {
        killAfter();
        killAfter = undefined;
      }
    }, 200)
    : undefined;
  const results = await runParallel(js, {
    server: `http://127.0.0.1:${GW}`,
    mode: "purify",
    concurrency: JOBS,
    retry: {
      retries: 10,
      baseDelayMs: 200,
      maxDelayMs: 3000,
      onRetry: (n, why) => {
        retries++;
        console.error(`  [${run}] retry ${n}: ${why.slice(0, 120)}`);
      },
    },
  });
  clearInterval(progress);
  const wall = (performance.now() - t0) / 1000;
  const rounds = results.reduce((s, r) => s + (r.rounds ?? 0), 0);
  return {
    run,
    replicas,
    wall_s: +wall.toFixed(1),
    rounds,
    rounds_per_s: +(rounds / wall).toFixed(2),
    failed: results.filter((r) => !r.ok).length,
    retries,
    results,
  };
}

async function weightsOf(run: string): Promise<Uint8Array[]> {
  return await Promise.all(
    jobs(run).map((j) => Deno.readFile(join(j.out!, "purified", "weights.bin"))),
  );
}

const same = (x: Uint8Array, y: Uint8Array) =>
  x.length === y.length && x.every((v, i) => v === y[i]);

let expectedRounds = 0;
const replicas = PORTS.map(startReplica);
const reports: RunReport[] = [];
let ok = true;
try {
  await Promise.all(PORTS.map((p) => waitReady(`http://127.0.0.1:${p}/readyz`)));
  console.error(`replicas on ${PORTS.join(", ")}, gateway on ${GW}, data in ${dir}`);

  const one = await withGateway([PORTS[0]], () => runJobs("one-replica", 1));
  reports.push(one);
  expectedRounds = one.rounds;
  const two = await withGateway(PORTS, () => runJobs("two-replicas", 2));
  reports.push(two);
  const killed = await withGateway(PORTS, () =>
    runJobs("two-replicas-one-killed", 2, () => {
      console.error(`  killing the replica on port ${PORTS[1]} (SIGKILL)`);
      replicas[1].kill("SIGKILL");
    }));
  reports.push(killed);

  const ref = await weightsOf("one-replica");
  const checks = await Promise.all(
    ["two-replicas", "two-replicas-one-killed"].map(async (run) => ({
      run,
      same_weights: (await weightsOf(run)).map((w, i) => same(w, ref[i])),
    })),
  );
  const killedReplicaDead = (await replicas[1].status).signal === "SIGKILL";
  const summary = {
    jobs: JOBS,
    images_per_job: Number(a.images),
    batch_size: Number(a.batch),
    max_steps_per_round: Number(a["max-steps"]),
    nginx_retry: a["nginx-retry"],
    runs: reports.map(({ results: _r, ...rest }) => rest),
    speedup_two_vs_one: +(one.wall_s / two.wall_s).toFixed(2),
    weights_equal_to_one_replica_run: checks,
    killed_replica_exited_by_sigkill: killedReplicaDead,
  };
  console.log(JSON.stringify(summary, null, 2));
  ok = reports.every((r) => r.failed === 0) &&
    checks.every((c) => c.same_weights.every(Boolean)) && killedReplicaDead;
} finally {
  for (const r of replicas) {
    try {
      r.kill("SIGTERM");
    } catch { /* already gone */ }
    await r.status;
  }
  if (!a.keep) await Deno.remove(dir, { recursive: true });
}
Deno.exit(ok ? 0 : 1);

/**
 * Prometheus text exposition: request counts and duration histograms per method, route and
 * status, engine restarts by cause, and tensor-engine gauges (as the engines last reported them).
 * Every label has a bounded set of values: an unknown method is `other`, a path that matched no
 * route is `unmatched`. Kept dependency-free; the format is the plain 0.0.4 text format.
 */
import type { EngineSnapshot } from "../engine/supervisor.ts";

/** Methods counted under their own name; any other is `other`. */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

/** The route label of a request that matched no route. */
export const UNMATCHED = "unmatched";

const BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

interface Series {
  count: number;
  sum: number;
  buckets: number[];
}

export class Metrics {
  #series = new Map<string, Series>();
  readonly startedAt = Date.now();

  observe(method: string, route: string, status: number, seconds: number): void {
    const m = METHODS.has(method) ? method : "other";
    const key = JSON.stringify([m, route, String(status)]);
    let s = this.#series.get(key);
    if (!s) {
      s = { count: 0, sum: 0, buckets: BUCKETS.map(() => 0) };
      this.#series.set(key, s);
    }
    s.count++;
    s.sum += seconds;
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) s.buckets[i]++;
    });
  }

  render(
    extra: { queueWaiting: number; running: number; backend: string; engine: EngineSnapshot },
  ): string {
    const out: string[] = [];
    const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
    out.push("# HELP purifier_requests_total Requests served, by route and status.");
    out.push("# TYPE purifier_requests_total counter");
    for (const [key, s] of this.#series) {
      const [m, r, st] = JSON.parse(key) as string[];
      out.push(
        `purifier_requests_total{method="${esc(m)}",route="${esc(r)}",status="${st}"} ${s.count}`,
      );
    }
    out.push("# HELP purifier_request_duration_seconds Request durations.");
    out.push("# TYPE purifier_request_duration_seconds histogram");
    for (const [key, s] of this.#series) {
      const [m, r, st] = JSON.parse(key) as string[];
      const l = `method="${esc(m)}",route="${esc(r)}",status="${st}"`;
      BUCKETS.forEach((b, i) =>
        out.push(`purifier_request_duration_seconds_bucket{${l},le="${b}"} ${s.buckets[i]}`)
      );
      out.push(`purifier_request_duration_seconds_bucket{${l},le="+Inf"} ${s.count}`);
      out.push(`purifier_request_duration_seconds_sum{${l}} ${s.sum}`);
      out.push(`purifier_request_duration_seconds_count{${l}} ${s.count}`);
    }
    const e = extra.engine;
    const mem = Deno.memoryUsage();
    out.push("# HELP purifier_engine_restarts_total Tensor engines replaced, by cause.");
    out.push("# TYPE purifier_engine_restarts_total counter");
    for (const [cause, n] of Object.entries(e.restarts)) {
      out.push(`purifier_engine_restarts_total{cause="${cause}"} ${n}`);
    }
    out.push(
      "# HELP purifier_engine_leaked_jobs_total Jobs that left tensors behind in an engine.",
    );
    out.push("# TYPE purifier_engine_leaked_jobs_total counter");
    out.push(`purifier_engine_leaked_jobs_total ${e.leakedJobs}`);
    const gauges: [string, string, number][] = [
      ["purifier_tensors", "Live tfjs tensors, all engines.", e.tensors],
      ["purifier_tensor_bytes", "Bytes held by live tfjs tensors, all engines.", e.tensorBytes],
      ["purifier_queue_waiting", "Requests waiting for a tensor engine.", extra.queueWaiting],
      ["purifier_engine_busy", "Tensor jobs running now.", extra.running],
      ["purifier_engines", "Tensor engines configured (ENGINE_WORKERS).", e.workers],
      ["purifier_engines_warm", "Tensor engines started and warm.", e.warm],
      [
        "purifier_engine_memory_bytes",
        "Memory of the engines (JS heaps + wasm heaps).",
        e.memoryBytes,
      ],
      ["purifier_rss_bytes", "Resident set size of the process.", mem.rss],
      ["purifier_http_heap_bytes", "JS heap of the HTTP thread.", mem.heapTotal],
      ["purifier_http_external_bytes", "Buffers held by the HTTP thread.", mem.external],
      ["purifier_uptime_seconds", "Seconds since start.", (Date.now() - this.startedAt) / 1000],
    ];
    for (const [name, help, v] of gauges) {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`);
    }
    out.push(`# HELP purifier_backend_info Tensor backend in use.`);
    out.push(`# TYPE purifier_backend_info gauge`);
    out.push(`purifier_backend_info{backend="${esc(extra.backend)}"} 1`);
    return out.join("\n") + "\n";
  }
}

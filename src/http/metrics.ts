/**
 * Prometheus text exposition: request counts and duration histograms per route and status, plus
 * tensor-engine gauges. Kept dependency-free; the format is the plain 0.0.4 text format.
 */
import * as tf from "@tensorflow/tfjs";

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
    const key = JSON.stringify([method, route, String(status)]);
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

  render(extra: { queueWaiting: number; busy: boolean; backend: string }): string {
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
    const mem = tf.memory();
    const gauges: [string, string, number][] = [
      ["purifier_tensors", "Live tfjs tensors.", mem.numTensors],
      ["purifier_tensor_bytes", "Bytes held by live tfjs tensors.", mem.numBytes],
      ["purifier_queue_waiting", "Requests waiting for the tensor engine.", extra.queueWaiting],
      ["purifier_engine_busy", "1 while a tensor job runs.", extra.busy ? 1 : 0],
      ["purifier_rss_bytes", "Resident set size of the process.", Deno.memoryUsage().rss],
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

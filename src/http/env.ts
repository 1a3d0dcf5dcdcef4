/** The typed per-request context shared by middleware and routes. */
import type { Config } from "../config.ts";
import type { Supervisor } from "../engine/supervisor.ts";
import type { EngineQueue } from "./engine_queue.ts";
import type { Metrics } from "./metrics.ts";

export interface Services {
  config: Config;
  /** The tensor engines (workers); all tfjs work runs there. */
  engine: Supervisor;
  metrics: Metrics;
  queue: EngineQueue;
}

export type AppEnv = {
  Variables: {
    requestId: string;
    /** Aborted when the client goes away or the request's time budget runs out. */
    signal: AbortSignal;
    services: Services;
    /** Set by the not-found handler: the request matched no route. */
    unmatched: boolean;
  };
};

/**
 * Every setting and limit, read from the environment through one zod schema. A bad value stops
 * the service at start with a message naming the variable, the value and what is allowed.
 */
import { z } from "zod";

const int = (def: number, min: number, max: number, what: string) =>
  z.coerce.number().int().min(min).max(max).default(def).describe(what);

const MiB = 1024 * 1024;

/** Most XNNPACK threads the wasm backend may start (tfjs pre-spawns this many workers at most). */
export const MAX_WASM_THREADS = 8;

export const ConfigSchema = z.object({
  PORT: int(8000, 1, 65535, "TCP port to listen on"),
  HOST: z.string().min(1).default("0.0.0.0").describe("address to bind"),
  BACKEND: z.enum(["webgpu", "wasm", "cpu"]).optional().describe(
    "force a tensor backend; default: webgpu if an adapter exists, else wasm, else cpu",
  ),
  WASM_THREADS: int(
    1,
    1,
    MAX_WASM_THREADS,
    "XNNPACK threads of the wasm backend (tfjs's threaded SIMD build); 1 = single-threaded",
  ),
  API_TOKEN: z.string().min(16, "API_TOKEN must be at least 16 characters").optional().describe(
    "when set, every /v1 request needs 'Authorization: Bearer <token>'",
  ),
  LOG_REQUESTS: z.enum(["true", "false"]).default("true").transform((v) => v === "true")
    .describe("write one JSON access-log line per request to stdout"),
  MAX_BODY_BYTES: int(256 * MiB, 1024, 4096 * MiB, "largest request body accepted (413 beyond)"),
  MAX_PARTS: int(256, 1, 100_000, "most multipart parts in one request"),
  MAX_IMAGES: int(20_000, 1, 1_000_000, "most images in one request"),
  MAX_PIXELS: int(64_000_000, 1, 2_000_000_000, "most N·H·W·C values in one request's images"),
  MAX_MODEL_JSON_BYTES: int(8 * MiB, 1024, 512 * MiB, "largest model.json"),
  MAX_WEIGHT_BYTES: int(200 * MiB, 1024, 4096 * MiB, "largest total weight bytes of a model"),
  MAX_MODEL_PARAMS: int(50_000_000, 1, 1_000_000_000, "most parameters in a model"),
  MAX_MODEL_LAYERS: int(500, 1, 100_000, "most layers in a model"),
  MAX_ACTIVATION_BYTES: int(
    1024 * MiB,
    MiB,
    64 * 1024 * MiB,
    "most bytes of intermediate tensors one batch may take, gradients included where a route " +
      "takes them; checked from the layer shapes before any tensor exists (413 beyond)",
  ),
  MAX_ATTACK_COST: int(
    2_000_000,
    1,
    1_000_000_000,
    "most image passes per request: gradient evaluations (images × steps × restarts), Square queries, an ensemble's sum",
  ),
  MAX_ROUND_STEPS: int(2_000, 1, 1_000_000, "most optimizer steps one purification round may take"),
  MAX_ROUND_MS: int(
    120_000,
    1_000,
    3_600_000,
    "longest time one purification round may train (ms)",
  ),
  REQUEST_TIMEOUT_MS: int(600_000, 1_000, 86_400_000, "time budget of one request (504 beyond)"),
  QUEUE_SIZE: int(16, 0, 10_000, "requests that may wait for the tensor engine (503 beyond)"),
  RETRY_AFTER_S: int(5, 1, 3600, "Retry-After sent with 503 when the queue is full"),
  ENGINE_WORKERS: int(
    1,
    1,
    64,
    "tensor engines (Web Workers), each running one job at a time; see 'Engines and replicas'",
  ),
  ENGINE_GRACE_MS: int(
    2_000,
    100,
    600_000,
    "time an engine gets to stop after its job's deadline or client abort before it is replaced",
  ),
  ENGINE_START_MS: int(
    120_000,
    1_000,
    600_000,
    "longest an engine may take to start its backend and warm up before it is replaced",
  ),
  MEMORY_LIMIT_MB: int(
    6_144,
    64,
    4_194_304,
    "the container's memory limit (MiB); engines are recycled against a share of it",
  ),
  ENGINE_RECYCLE_SHARE: z.coerce.number().min(0).max(1).default(0.5).describe(
    "replace an engine between jobs once its memory passes this share of MEMORY_LIMIT_MB / " +
      "ENGINE_WORKERS (the wasm heap never shrinks); 0 never recycles",
  ),
  ENGINE_TEST_HOOKS: z.enum(["true", "false"]).default("false").transform((v) => v === "true")
    .describe(
      "tests only: honour the X-Engine-Fault request header (trap, oom, die, hang); never in production",
    ),
});

export type Config = z.infer<typeof ConfigSchema>;

/** A bad environment value: the service refuses to start. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Reads the config from `env` (default: the process environment). Throws {@link ConfigError}. */
export function loadConfig(env: Record<string, string | undefined> = readEnv()): Config {
  const known = Object.fromEntries(
    Object.keys(ConfigSchema.shape).map((k) => [k, env[k] === "" ? undefined : env[k]]),
  );
  const parsed = ConfigSchema.safeParse(known);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) =>
      `${i.path.join(".")}=${JSON.stringify(known[String(i.path[0])])}: ${i.message}`
    );
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  return parsed.data;
}

function readEnv(): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const k of Object.keys(ConfigSchema.shape)) out[k] = Deno.env.get(k);
  return out;
}

/** The limits part of the config, as reported by `/readyz` (never the token). */
export function publicLimits(c: Config): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c)) {
    if (k.startsWith("MAX_") || k === "REQUEST_TIMEOUT_MS" || k === "QUEUE_SIZE") {
      out[k] = v as number;
    }
  }
  return out;
}

/**
 * The job protocol between the HTTP thread and an engine worker: what each side may post to the
 * other. Everything here is structured-clone data; binary inputs and outputs travel as
 * transferred `ArrayBuffer`s (moved, not copied).
 */
import type { Config } from "../config.ts";
import type { PartMap } from "../http/form.ts";
import type { ReplyPart } from "../http/reply.ts";
import type { BundleArtifacts } from "../io/model_bundle.ts";
import type { BackendInfo, BackendName } from "../tensor/backend.ts";

/** The engine's operations, one per compute route. */
export const OP_NAMES = ["predict", "attacks", "detect", "evaluate", "purify"] as const;
export type OpName = typeof OP_NAMES[number];

/** What the test-only `X-Engine-Fault` header can make a worker do (ENGINE_TEST_HOOKS=true). */
export const FAULT_HOOKS = ["trap", "oom", "die", "hang"] as const;
export type FaultHook = typeof FAULT_HOOKS[number];

/** The fault a raw `X-Engine-Fault` header names, or undefined for anything else. */
export function faultHookOf(h: string | undefined): FaultHook | undefined {
  return (FAULT_HOOKS as readonly string[]).includes(h ?? "") ? h as FaultHook : undefined;
}

/** Why an engine was replaced: the bounded `cause` label of `purifier_engine_restarts_total`. */
export const RESTART_CAUSES = [
  "wasm_trap",
  "out_of_memory",
  "died",
  "hung",
  "start_failed",
  "memory_recycle",
] as const;
export type RestartCause = typeof RESTART_CAUSES[number];

/** A job's inputs: what the HTTP thread parsed and validated, plus every part's raw bytes. */
export interface JobInput {
  /** The `params` part, already validated by the route's zod schema. */
  params: unknown;
  /** Every multipart part (images and labels are decoded in the worker). */
  parts: PartMap;
  /** Model bundles parsed on the HTTP thread, by part prefix ("" for `model` + `weights`). */
  bundles: Record<string, BundleArtifacts>;
  /** Other route-specific values parsed on the HTTP thread (e.g. a round's `state`). */
  extras: Record<string, unknown>;
  /** The app's limits (an engine may serve apps with different limits, as tests do). */
  config: Config;
}

/** A job's result: a JSON report, binary parts for a multipart reply, reply headers. */
export interface JobOutput {
  json: unknown;
  parts: ReplyPart[];
  headers: Record<string, string>;
}

/** What a worker reports about itself after every job. */
export interface EngineStats {
  /** Live tfjs tensors (must return to the warm engine's count after each job). */
  tensors: number;
  tensorBytes: number;
  /** The worker's own memory: its JS heap, external buffers and the wasm heap. */
  memoryBytes: number;
}

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  /** Present for named HTTP errors. */
  status?: number;
  code?: string;
  details?: unknown;
  /** Set when the error leaves the worker's engine unusable. */
  fault?: "wasm_trap" | "out_of_memory";
}

export type ToWorker =
  | { type: "init"; backend?: BackendName; wasmThreads: number }
  | { type: "job"; id: number; op: OpName; input: JobInput; fault?: FaultHook }
  | { type: "abort"; id: number; reason: WireError };

export type FromWorker =
  | { type: "ready"; backend: BackendInfo; stats: EngineStats }
  | { type: "init_failed"; message: string }
  | { type: "done"; id: number; output: JobOutput; stats: EngineStats }
  | { type: "failed"; id: number; error: WireError; stats: EngineStats };

/** The distinct buffers behind `views`: a transfer list may not name one twice. */
export function buffersOf(views: Iterable<ArrayBufferView>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const v of views) {
    if (v.buffer instanceof ArrayBuffer && v.buffer.byteLength > 0) out.add(v.buffer);
  }
  return [...out];
}

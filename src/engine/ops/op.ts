/** The shape every engine operation has: validated inputs in, a reply's content out. */
import type { BackendInfo } from "../../tensor/backend.ts";
import type { JobInput, JobOutput } from "../protocol.ts";
import { Form } from "../../http/form.ts";
import { loadModel } from "../../http/inputs.ts";
import type { Preprocess } from "../../model/classifier.ts";
import type { LoadedClassifier } from "../../model/load_classifier.ts";
import type { FiniteGuard } from "../finite.ts";

export interface OpContext {
  /** Fires when the HTTP thread asks the job to stop (deadline or client gone). */
  signal: AbortSignal;
  /** The backend this worker runs; reports name it. */
  backend: BackendInfo;
  /** Every classifier an op loads goes through it, so non-finite logits are a 422. */
  guard: FiniteGuard;
}

/** One engine operation; runs inside the worker, one at a time. */
export type Op = (input: JobInput, ctx: OpContext) => Promise<JobOutput>;

/** The job's parts as the `Form` the input readers take. */
export function formOf(input: JobInput): Form {
  return new Form(input.parts);
}

/** Loads the bundle under `prefix` (parsed by the HTTP thread), watched by the guard. */
export async function loadGuarded(
  input: JobInput,
  ctx: OpContext,
  preprocess?: Preprocess,
  prefix = "",
): Promise<LoadedClassifier> {
  return ctx.guard.wrap(await loadModel(input.bundles[prefix], preprocess));
}

/** A JSON-only result. */
export function jsonOutput(json: unknown): JobOutput {
  return { json, parts: [], headers: {} };
}

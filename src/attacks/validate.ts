/**
 * Checks of attack options for callers that bypass the request schema (library use, tests): a
 * bad number must fail with a message, not run a NaN attack or loop forever.
 */
import { UnprocessableError } from "../errors.ts";

export function checkAttackOptions(o: {
  eps: number;
  steps?: number;
  stepSize?: number;
  restarts?: number;
  momentum?: number;
}): void {
  const bad = (what: string, v: number, allowed: string) =>
    new UnprocessableError(`${what} = ${v} is not allowed; allowed: ${allowed}`);
  // No upper bound here: an L2 budget above 1 is meaningful on large images.
  if (!(o.eps > 0 && Number.isFinite(o.eps))) throw bad("eps", o.eps, "a finite number > 0");
  if (o.steps !== undefined && !(Number.isInteger(o.steps) && o.steps >= 1)) {
    throw bad("steps", o.steps, "an integer ≥ 1");
  }
  if (o.stepSize !== undefined && !(o.stepSize > 0 && Number.isFinite(o.stepSize))) {
    throw bad("step_size", o.stepSize, "a finite number > 0");
  }
  if (o.restarts !== undefined && !(Number.isInteger(o.restarts) && o.restarts >= 1)) {
    throw bad("restarts", o.restarts, "an integer ≥ 1");
  }
  if (o.momentum !== undefined && !(o.momentum >= 0 && Number.isFinite(o.momentum))) {
    throw bad("momentum", o.momentum, "a finite number ≥ 0");
  }
}

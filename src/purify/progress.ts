/**
 * How far a purification has come: the units of work still to run from the cursor, and the
 * progress share the round report shows. Future train stages are sized by the current clean set,
 * so the estimate moves as re-selection grows or shrinks it; the evidence phase counts its most
 * units until the infected logits say how many apply.
 *
 * @module
 */
import { round4 } from "./events.ts";
import { isMultiProbe, type Schedule, trainStageSteps } from "./schedule.ts";
import { type RoundState, scoreUnits } from "./state.ts";

/**
 * Units still to run after the cursor of `st`, with `clean` the size of the current training
 * pool (the clean set, or the set a running multi-rate probe started from).
 */
export function remainingUnits(
  st: Pick<RoundState, "cursor" | "schedule" | "dataset">,
  clean: number,
): number {
  const c = st.cursor;
  if (c.phase === "done") return 0;
  const schedule = st.schedule;
  const { n, num_classes: k } = st.dataset;
  const stages = schedule.stages;
  const score = scoreUnits(schedule, n);
  let rest = c.total - c.step;
  if (c.phase === "init" && schedule.suspect.rule === "evidence") {
    rest += evidenceUnitsBound(schedule, k);
  }
  // Before the first stage (init, evidence) every stage is ahead, sized by the whole set.
  const started = c.phase !== "init" && c.phase !== "evidence";
  const current = stages[c.stage];
  if (c.phase === "stage" && current.kind === "train" && current.rescore !== null) rest += score;
  if (started && current?.kind === "train" && isMultiProbe(current)) {
    const left = current.probe_lrs!.length - 1 - c.attempt;
    rest += left * (trainStageSteps(current, clean) + score);
  }
  const pool = started ? clean : n;
  for (let s = started ? c.stage + 1 : 0; s < stages.length; s++) {
    const stage = stages[s];
    if (stage.kind === "reconstruct") rest += stage.steps;
    else {
      rest += trainStageSteps(stage, pool);
      if (stage.rescore !== null) rest += score;
    }
  }
  return rest;
}

/** Share of the work done, to 4 decimals. */
export function progressShare(stepsDone: number, remaining: number): number {
  return round4(stepsDone / Math.max(1, stepsDone + remaining));
}

/** Most units an evidence phase can take (before the infected logits say how many apply). */
function evidenceUnitsBound(schedule: Schedule, k: number): number {
  const o = schedule.suspect.evidence;
  const landing = o.landing_per_class > 0 ? Math.ceil((k * o.landing_per_class) / o.batch_size) : 0;
  const patch = o.patch_steps > 0 ? k + (o.untargeted ? 1 : 0) : 0;
  return landing + patch + (o.additive_steps > 0 ? k : 0);
}

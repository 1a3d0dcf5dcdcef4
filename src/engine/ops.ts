/** The engine's operations by name (the worker's dispatch table). */
import type { OpName } from "./protocol.ts";
import { attacksOp } from "./ops/attacks.ts";
import { detectOp } from "./ops/detect.ts";
import { evaluateOp } from "./ops/evaluate.ts";
import type { Op } from "./ops/op.ts";
import { predictOp } from "./ops/predict.ts";
import { purifyOp } from "./ops/purify.ts";

export const OPS: Record<OpName, Op> = {
  predict: predictOp,
  attacks: attacksOp,
  detect: detectOp,
  evaluate: evaluateOp,
  purify: purifyOp,
};

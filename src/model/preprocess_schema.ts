/** The `preprocess` option shared by every compute endpoint's params. */
import { z } from "zod";

/**
 * Smallest accepted std. Pixel spacing in [0,1] is 1/255 ≈ 0.004, and real normalisations use
 * stds of 0.2-0.3; 1e-3 allows any of them while refusing values that turn a 1/255 step into a
 * jump of thousands (or, for subnormal stds, into Infinity and NaN).
 */
export const MIN_STD = 1e-3;

export const PreprocessSchema = z.object({
  mean: z.array(z.number().finite()).min(1).max(4).describe("per-channel mean, in pixel units"),
  std: z.array(
    z.number().finite().min(MIN_STD, {
      message: `every std must be at least ${MIN_STD}: dividing [0,1] pixels by less ` +
        "magnifies them past any meaningful range (and a tiny std overflows to Infinity)",
    }),
  ).min(1).max(4).describe(
    `per-channel std (>= ${MIN_STD}); the model sees (x - mean) / std for pixels x in [0,1]`,
  ),
}).strict().refine((p) => p.mean.length === p.std.length, {
  message: "mean and std must have the same length",
}).describe("normalisation the model expects; attacks still perturb [0,1] pixels");

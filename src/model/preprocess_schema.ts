/** The `preprocess` option shared by every compute endpoint's params. */
import { z } from "zod";

export const PreprocessSchema = z.object({
  mean: z.array(z.number().finite()).min(1).max(4).describe("per-channel mean, in pixel units"),
  std: z.array(z.number().finite().positive()).min(1).max(4).describe(
    "per-channel std (> 0); the model sees (x - mean) / std for pixels x in [0,1]",
  ),
}).strict().refine((p) => p.mean.length === p.std.length, {
  message: "mean and std must have the same length",
}).describe("normalisation the model expects; attacks still perturb [0,1] pixels");

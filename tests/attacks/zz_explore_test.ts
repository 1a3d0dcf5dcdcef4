(Error as unknown as {stackTraceLimit: number}).stackTraceLimit = 100;
import * as tf from "@tensorflow/tfjs";
import { trainedCnn, testBatch } from "./_fixtures.ts";
import { fgsm } from "../../src/attacks/fgsm.ts";
import { pgd } from "../../src/attacks/pgd.ts";
import { apgd } from "../../src/attacks/apgd.ts";
import { mifgsm } from "../../src/attacks/mifgsm.ts";

Deno.test("explore", async () => {
  let t = performance.now();
  const clf = await trainedCnn();
  console.log("train ms", performance.now() - t);
  const { x, y } = testBatch(60);
  const acc = tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(clf.logits(x), 1), y), "float32")));
  console.log("clean acc", await acc.data());
  const rate = (s: boolean[]) => s.filter(Boolean).length / s.length;
  for (const eps of [0.03, 0.05, 0.08, 0.12]) {
    t = performance.now();
    const f = await fgsm(clf, x, y, { eps });
    const p = await pgd(clf, x, y, { eps, steps: 10 });
    const a = await apgd(clf, x, y, { eps, steps: 10 });
    const am = await apgd(clf, x, y, { eps, steps: 10, loss: "margin" });
    const m = await mifgsm(clf, x, y, { eps, steps: 10 });
    console.log(eps, "fgsm", rate(f.success), "pgd", rate(p.success), "apgd", rate(a.success), "apgd-m", rate(am.success), "mi", rate(m.success), performance.now() - t);
    tf.dispose([f.adversarial, p.adversarial, a.adversarial, m.adversarial, am.adversarial]);
  }
  for (const eps of [0.1, 0.15, 0.2]) {
    const p = await pgd(clf, x, y, { eps, steps: 20, target: 2 });
    const a = await apgd(clf, x, y, { eps, steps: 20, target: 2 });
    console.log("targeted", eps, rate(p.success), rate(a.success));
    tf.dispose([p.adversarial, a.adversarial]);
  }
  tf.dispose([x, y]);
  console.log(tf.memory().numTensors);
});

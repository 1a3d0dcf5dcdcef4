import assert from "node:assert/strict";
import { z } from "zod";
import { AttackParamsSchema, estimateCost } from "../../src/attacks/options.ts";

const parse = (v: unknown) => AttackParamsSchema.parse(v);
const fails = (v: unknown) => !AttackParamsSchema.safeParse(v).success;

Deno.test("attack params fill in each attack's documented defaults", () => {
  assert.deepEqual(parse({ attack: "pgd" }), {
    attack: "pgd",
    norm: "linf",
    steps: 10,
    restarts: 1,
    random_start: true,
    early_stop: true,
    eps: 8 / 255,
    loss: "ce",
    seed: 0,
  });
  const m = parse({ attack: "mifgsm" });
  assert.equal(m.attack === "mifgsm" && m.momentum, 1.0);
  assert.equal(m.attack === "mifgsm" && m.steps, 10);
  const a = parse({ attack: "apgd" });
  assert.equal(a.attack === "apgd" && a.steps, 100);
  assert.equal(a.attack === "apgd" && a.momentum, 0.75);
  assert.equal(a.attack === "apgd" && a.rho, 0.75);
  assert.equal(a.attack === "apgd" && a.random_start, true);
  assert.equal(parse({ attack: "fgsm" }).norm, "linf");
  assert.deepEqual(parse({ attack: "square" }), {
    attack: "square",
    norm: "linf",
    queries: 5000,
    p_init: 0.8,
    restarts: 1,
    eps: 8 / 255,
    seed: 0,
  });
  assert.deepEqual(parse({ attack: "autoattack" }), {
    attack: "autoattack",
    version: "standard",
    norm: "linf",
    eps: 8 / 255,
    seed: 0,
  });
});

Deno.test("square and autoattack params refuse bad versions, members and options they do not take", () => {
  for (
    const bad of [
      { attack: "autoattack", version: "slow" },
      { attack: "autoattack", version: 1 },
      { attack: "autoattack", members: [] },
      { attack: "autoattack", members: ["fab-t"] },
      { attack: "autoattack", members: ["apgd-ce", "apgd-ce"] },
      { attack: "autoattack", target: 1 },
      { attack: "autoattack", loss: "dlr" },
      { attack: "autoattack", steps: 10 },
      { attack: "square", loss: "ce" },
      { attack: "square", queries: 0 },
      { attack: "square", queries: 100_001 },
      { attack: "square", queries: 2.5 },
      { attack: "square", p_init: 0 },
      { attack: "square", p_init: 1.5 },
      { attack: "square", norm: "l1" },
      { attack: "square", steps: 10 },
    ]
  ) {
    assert.ok(fails(bad), JSON.stringify(bad));
  }
  assert.ok(!fails({ attack: "autoattack", version: "fast", members: ["square", "apgd-ce"] }));
  assert.ok(!fails({ attack: "square", norm: "l2", eps: 0.5, target: 3, queries: 10 }));
  assert.ok(!fails({ attack: "apgd", loss: "dlr" }));
});

Deno.test("attack params reject unknown keys, unknown attacks and options an attack does not take", () => {
  assert.ok(fails({ attack: "pgd", epsilon: 0.1 }));
  assert.ok(fails({ attack: "cw" }));
  assert.ok(fails({}));
  assert.ok(fails({ attack: "fgsm", steps: 3 }));
  assert.ok(fails({ attack: "fgsm", norm: "l2" }));
  assert.ok(fails({ attack: "mifgsm", norm: "l2" }));
  assert.ok(fails({ attack: "pgd", momentum: 0.5 }));
  assert.ok(!fails({ attack: "pgd", norm: "l2", eps: 0.5 }));
  assert.ok(!fails({ attack: "apgd", norm: "l2" }));
});

Deno.test("attack params enforce their bounds", () => {
  for (
    const bad of [
      { eps: 0 },
      { eps: 1.5 },
      { eps: -0.1 },
      { steps: 0 },
      { steps: 1001 },
      { steps: 2.5 },
      { step_size: 0 },
      { step_size: 2 },
      { restarts: 0 },
      { restarts: 21 },
      { batch_size: 0 },
      { batch_size: 1025 },
      { seed: -1 },
      { seed: 0.5 },
      { target: -1 },
      { target: 1.5 },
      { target: [] },
      { target: [0, -2] },
      { loss: "mse" },
      { random_start: "yes" },
      { preprocess: { mean: [0.5], std: [0] } },
      { preprocess: { mean: [0.5, 0.5], std: [0.2] } },
    ]
  ) {
    assert.ok(fails({ attack: "pgd", ...bad }), JSON.stringify(bad));
  }
  assert.ok(fails({ attack: "apgd", momentum: 1.5 }));
  assert.ok(!fails({ attack: "pgd", eps: 1, steps: 1000, restarts: 20, target: [0, 2], seed: 5 }));
  assert.ok(!fails({ attack: "fgsm", preprocess: { mean: [0.5], std: [0.25] } }));
});

Deno.test("the attack params schema converts to JSON Schema with descriptions", () => {
  const schema = z.toJSONSchema(AttackParamsSchema, { io: "input" }) as {
    oneOf: {
      properties: Record<string, { description?: string }>;
      additionalProperties?: unknown;
    }[];
  };
  assert.equal(schema.oneOf.length, 6);
  for (const variant of schema.oneOf) {
    assert.equal(variant.additionalProperties, false);
    for (const [k, v] of Object.entries(variant.properties)) {
      assert.ok(v.description, `${k} undescribed`);
    }
  }
});

Deno.test("estimateCost() is images × steps × restarts", () => {
  assert.equal(estimateCost(parse({ attack: "fgsm" }), 50), 50);
  assert.equal(estimateCost(parse({ attack: "pgd", steps: 20, restarts: 3 }), 50), 3000);
  assert.equal(estimateCost(parse({ attack: "mifgsm", steps: 7 }), 4), 28);
  assert.equal(estimateCost(parse({ attack: "apgd" }), 10), 1000);
});

Deno.test("estimateCost() counts Square's queries as image passes and sums the ensemble's members", () => {
  assert.equal(estimateCost(parse({ attack: "square", queries: 300, restarts: 2 }), 10), 6000);
  // standard: APGD-CE 100 + APGD-T 9 × 100 + Square 5000 per image.
  assert.equal(estimateCost(parse({ attack: "autoattack" }), 10), 10 * 6000);
  // fast: 50 + 3 × 50 + 1000.
  assert.equal(estimateCost(parse({ attack: "autoattack", version: "fast" }), 10), 10 * 1200);
  assert.equal(
    estimateCost(parse({ attack: "autoattack", members: ["square"] }), 10),
    10 * 5000,
  );
});

import assert from "node:assert/strict";
import { z } from "zod";
import { ValidationError } from "../../src/errors.ts";
import { parseRoundParams, resolveSchedule } from "../../src/purify/params.ts";
import {
  defaultSchedule,
  parseSchedule,
  publishedSchedule,
  ScheduleSchema,
} from "../../src/purify/schedule.ts";

const base = () => ({ stages: [{ kind: "train", name: "s" }] });

Deno.test("both presets are valid schedules and parse to themselves", () => {
  for (const s of [defaultSchedule(), publishedSchedule()]) {
    assert.deepEqual(parseSchedule(JSON.parse(JSON.stringify(s))), s);
  }
});

Deno.test("the default schedule never decays its rate below 1e-3 and never re-admits flags", () => {
  const s = defaultSchedule();
  assert.equal(s.initial_clean.rule, "outside_suspect");
  for (const st of s.stages) {
    if (st.kind !== "train") continue;
    assert.ok(st.lr >= 0.001, `stage ${st.name} lr ${st.lr}`);
    if (st.rescore) assert.equal(st.rescore.flag.rule, "split");
  }
  assert.ok(s.stages.some((st) => st.kind === "reconstruct"));
  assert.ok(s.stages.some((st) => st.kind === "train" && st.revert));
});

Deno.test("the published schedule grows the clean set by fixed fractions and decays its rate", () => {
  const s = publishedSchedule();
  assert.deepEqual(s.initial_clean, { rule: "random", fraction: 0.2 });
  const fractions = s.stages.flatMap((st) =>
    st.kind === "train" && st.rescore?.clean.rule === "fraction" ? [st.rescore.clean.fraction] : []
  );
  assert.deepEqual(fractions, [0.4, 0.7, 0.8, 0.9]);
  const last = s.stages[s.stages.length - 1];
  assert.ok(last.kind === "train" && last.lr === 1e-4 && last.losses.mean_teacher === 0.05);
});

Deno.test("parseSchedule() refuses values out of bounds with a 400 naming the field", () => {
  const bad: [unknown, string][] = [
    [{ stages: [] }, "stages"],
    [{ stages: Array(17).fill({ kind: "train", name: "s" }) }, "stages"],
    [{ stages: [{ kind: "train", name: "s", lr: 2 }] }, "stages.0.lr"],
    [{ stages: [{ kind: "train", name: "s", epochs: 0 }] }, "stages.0.epochs"],
    [{ stages: [{ kind: "train", name: "s", pgd: { eps: 0.9 } }] }, "stages.0.pgd.eps"],
    [{ stages: [{ kind: "train", name: "s", pgd: { steps: 0 } }] }, "stages.0.pgd.steps"],
    [{ stages: [{ kind: "train", name: "s", momentum: 1 }] }, "stages.0.momentum"],
    [{ stages: [{ kind: "train", name: "s", losses: { clean: -1 } }] }, "stages.0.losses.clean"],
    [{ stages: [{ kind: "train", name: "s", typo: 1 }] }, "stages.0"],
    [{ stages: [{ kind: "reconstruct", name: "r", steps: 0 }] }, "stages.0.steps"],
    [{ stages: [{ kind: "shrink", name: "s" }] }, "stages.0"],
    [{ ...base(), initial_clean: { rule: "random", fraction: 0 } }, "initial_clean"],
    [{ ...base(), score_batch_size: 0 }, "score_batch_size"],
    [{ ...base(), extra: true }, "schedule"],
    [{
      stages: [{
        kind: "train",
        name: "s",
        rescore: { flag: { rule: "fraction", fraction: 0.9 } },
      }],
    }, "stages.0.rescore.flag"],
  ];
  for (const [json, field] of bad) {
    assert.throws(() => parseSchedule(json), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.equal(err.status, 400);
      assert.ok(err.message.includes(field), `${err.message} names ${field}`);
      return true;
    });
  }
});

Deno.test("round params accept a preset name or a schedule and refuse anything else", () => {
  assert.equal(resolveSchedule(parseRoundParams({}).schedule).name, "default");
  assert.equal(
    resolveSchedule(parseRoundParams({ schedule: "published" }).schedule).name,
    "published",
  );
  assert.equal(resolveSchedule(parseRoundParams({ schedule: base() }).schedule).name, "custom");
  for (
    const p of [{ schedule: "fast" }, { max_steps: 0 }, { max_ms: -1 }, { seed: 2 ** 31 }, { x: 1 }]
  ) {
    assert.throws(() => parseRoundParams(p), ValidationError);
  }
});

Deno.test("the schedule schema renders to JSON Schema with a description on every field", () => {
  const json = z.toJSONSchema(ScheduleSchema, { io: "input", unrepresentable: "any" });
  const missing: string[] = [];
  const walk = (node: unknown, path: string) => {
    if (typeof node !== "object" || node === null) return;
    const o = node as Record<string, unknown>;
    if (o.properties && typeof o.properties === "object") {
      for (const [k, v] of Object.entries(o.properties as Record<string, unknown>)) {
        const d = v as Record<string, unknown>;
        if (k !== "kind" && k !== "rule" && typeof d.description !== "string" && !d.$ref) {
          missing.push(`${path}.${k}`);
        }
        walk(v, `${path}.${k}`);
      }
    }
    for (const key of ["items", "anyOf", "oneOf", "allOf"]) {
      const c = o[key];
      if (Array.isArray(c)) c.forEach((x, i) => walk(x, `${path}.${key}[${i}]`));
      else if (c) walk(c, `${path}.${key}`);
    }
  };
  walk(json, "$");
  assert.deepEqual(missing, []);
});

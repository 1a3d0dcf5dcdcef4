/**
 * The WebGPU flag table: both sets apply and restore exactly, under any backend (the flags are
 * registered by importing tfjs-backend-webgpu). The check that initBackend applies ours on a
 * started webgpu backend is tests/webgpu/flags_test.ts.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { currentWebgpuFlags, setWebgpuFlags, WEBGPU_FLAGS } from "../../src/tensor/webgpu_flags.ts";

Deno.test("webgpu flags: stock values are tfjs 4.22's registered defaults", () => {
  // The registry tfjs-backend-webgpu's flags_webgpu.js filled: name -> its default's function.
  const registry = (tf.env() as unknown as {
    flagRegistry: Record<string, { evaluationFn: () => unknown }>;
  }).flagRegistry;
  for (const [name, flag] of Object.entries(WEBGPU_FLAGS)) {
    assert.ok(registry[name], `${name} is a registered tfjs flag`);
    assert.equal(registry[name].evaluationFn(), flag.stock, name);
    assert.ok(flag.reason.length > 40, `${name} has a reason`);
  }
});

Deno.test("webgpu flags: ours then stock round-trips every flag", () => {
  const before = currentWebgpuFlags();
  try {
    setWebgpuFlags("ours");
    for (const [name, flag] of Object.entries(WEBGPU_FLAGS)) {
      assert.equal(tf.env().get(name), flag.ours, name);
    }
    assert.equal(tf.env().getBool("WEBGPU_CPU_FORWARD"), false);
    assert.equal(tf.env().getBool("WEBGPU_CONV_SEPARATE_IM2COL_SHADER"), true);
    setWebgpuFlags("stock");
    for (const [name, flag] of Object.entries(WEBGPU_FLAGS)) {
      assert.equal(tf.env().get(name), flag.stock, name);
    }
  } finally {
    for (const [name, value] of Object.entries(before)) tf.env().set(name, value);
  }
});

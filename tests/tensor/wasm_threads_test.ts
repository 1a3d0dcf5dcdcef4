/**
 * Threaded wasm (src/tensor/wasm_threads.ts) starts under Deno and computes what the
 * single-threaded build computes. Runs in a child process: the threaded build must be chosen
 * before the wasm backend first starts, and its pthread workers outlive the test otherwise.
 */
import assert from "node:assert/strict";

const backend = new URL("../../src/tensor/backend.ts", import.meta.url).href;

const script = `
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "${backend}";
const info = await initBackend("wasm", { wasmThreads: 2 });
const a = tf.randomUniform([300, 200], -1, 1, "float32", 1);
const b = tf.randomUniform([200, 100], -1, 1, "float32", 2);
const got = await tf.matMul(a, b).data();
const av = await a.data(), bv = await b.data();
let err = 0;
for (let i = 0; i < 300; i++) for (let j = 0; j < 100; j++) {
  let s = 0;
  for (let k = 0; k < 200; k++) s += av[i * 200 + k] * bv[k * 100 + j];
  err = Math.max(err, Math.abs(s - got[i * 100 + j]));
}
console.log(JSON.stringify({ threads: info.wasmThreads, skipped: info.skipped, err }));
Deno.exit(0);
`;

Deno.test("threaded wasm starts with 2 XNNPACK threads and multiplies matrices correctly", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
  const r = JSON.parse(text.split("\n").pop()!);
  assert.deepEqual(r.skipped, []);
  assert.equal(r.threads, 2);
  assert.ok(r.err < 1e-3, `max abs error ${r.err}`);
});

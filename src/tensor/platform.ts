/**
 * What tfjs believes about its host. Deno defines `process.versions.node`, so tfjs's `IS_NODE`
 * flag reads true and its cpu backend prints, on its first tensor, a banner recommending
 * `@tensorflow/tfjs-node` (native Node bindings, which Deno cannot load). The flag is set to what
 * is true before any tensor exists. tfjs-core has already chosen its platform (fetch, text codecs)
 * at import, which keeps working; the only other reader, the wasm backend's probe for threads,
 * is answered explicitly (single-threaded unless `prepareWasmThreads` asks for more).
 */
import * as tf from "@tensorflow/tfjs";
// Registers the flag answered below.
import "@tensorflow/tfjs-backend-wasm";

/** Tells tfjs that it is not running under Node.js. Idempotent. */
export function declareNotNode(): void {
  const env = tf.env();
  if (!("WASM_HAS_MULTITHREAD_SUPPORT" in env.getFlags())) {
    env.set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  }
  env.set("IS_NODE", false);
}

// The pthread worker of tfjs-backend-wasm's threaded SIMD build, adapted to run under Deno's
// node:worker_threads (wasm_threads.ts says why). It evaluates the worker script tfjs ships
// as a string, then teaches it to load the main script from the Blob that tfjs posts: Emscripten's
// Node path reads scripts with fs.readFileSync, which cannot open a blob: URL.
"use strict";
const path = require("node:path");
const shipped = require(
  path.join(
    __dirname,
    "../../node_modules/@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js",
  ),
).wasmWorkerContents;
globalThis.require = require;
globalThis.__filename = __filename;
// The main script arrives as the source text of the factory function in tfjs's rollup bundle
// (dist/tf-backend-wasm.node.js), which refers to that bundle's module-scope names.
Object.assign(globalThis, {
  require$$0: require("node:fs"),
  require$$1: require("node:path"),
  require$$3: require("node:perf_hooks"),
  require$$4: require("node:os"),
  commonjsGlobal: globalThis,
});
// As tfjs does before making its Blob: the template literal turned "\\n" escapes into newlines.
// Deno's worker global has a getter-only `location`, which the script's Object.assign would throw on.
(0, eval)(shipped.replace(/\n/g, "\\n").replace("location:{href:__filename},", ""));

const onmessage = globalThis.onmessage;
const readFile = globalThis.importScripts;
const blobs = new Map();
globalThis.importScripts = (f) => {
  if (blobs.has(f)) return (0, eval)(blobs.get(f));
  return readFile(f);
};
const originalCreate = URL.createObjectURL;
let pendingText;
URL.createObjectURL = (obj) => {
  const url = originalCreate(obj);
  if (pendingText !== undefined) blobs.set(url, pendingText);
  return url;
};
let queue;
globalThis.onmessage = (e) => {
  if (queue) {
    queue.push(e);
    return;
  }
  const d = e.data;
  if (d && d.cmd === "load" && typeof d.urlOrBlob !== "string" && d.urlOrBlob) {
    queue = [];
    d.urlOrBlob.text().then((text) => {
      pendingText = text;
      onmessage(e);
      pendingText = undefined;
      const rest = queue;
      queue = undefined;
      for (const m of rest) globalThis.onmessage(m);
    });
    return;
  }
  onmessage(e);
};

/**
 * Worker-side fault handling: which thrown errors leave the engine unusable, and the test-only
 * hooks that make a worker fail for real (a genuine wasm trap, a genuine allocation failure, an
 * uncaught error, a loop that never yields) so the supervisor is tested without mocks.
 */
import type { FaultHook, WireError } from "./protocol.ts";

/**
 * How tfjs and V8 report an allocation that cannot be met: a failed `ArrayBuffer` (cpu backend),
 * a wasm memory that cannot grow, a view past the end of a heap whose `malloc` failed, or
 * Emscripten's abort on OOM.
 */
const OOM =
  /allocation failed|out of memory|\bOOM\b|maximum memory size|could not allocate|offset is out of bounds|invalid typed array length|array buffer allocation/i;

/** `wasm_trap` or `out_of_memory` when `err` leaves this worker's engine unusable. */
export function faultOf(err: unknown): WireError["fault"] {
  if (!(err instanceof Error)) return undefined;
  const text = `${err.name}: ${err.message}`;
  if (err instanceof RangeError && OOM.test(text)) return "out_of_memory";
  if (err instanceof WebAssembly.RuntimeError) {
    return OOM.test(text) ? "out_of_memory" : "wasm_trap";
  }
  return undefined;
}

/** `(module (func (export "f") unreachable))`: calling `f` is a real wasm trap. */
const TRAP_MODULE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version
  0x01,
  0x04,
  0x01,
  0x60,
  0x00,
  0x00, // type: () -> ()
  0x03,
  0x02,
  0x01,
  0x00, // one function of type 0
  0x07,
  0x05,
  0x01,
  0x01,
  0x66,
  0x00,
  0x00, // export "f"
  0x0a,
  0x05,
  0x01,
  0x03,
  0x00,
  0x00,
  0x0b, // body: unreachable
]);

/** Makes this worker fail as `hook` says; only reached when ENGINE_TEST_HOOKS is on. */
export async function runFaultHook(hook: FaultHook): Promise<void> {
  switch (hook) {
    case "trap": {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(TRAP_MODULE));
      (inst.exports.f as () => void)();
      return;
    }
    case "oom":
      // 32 TiB: refused by the allocator on any host, as a huge tensor's buffer would be.
      void new ArrayBuffer(2 ** 45);
      return;
    case "die":
      setTimeout(() => {
        throw new Error("engine test hook: die");
      }, 0);
      return await new Promise<void>(() => {});
    case "hang":
      // Never yields, so the abort message is never read: only termination stops it.
      for (;;) {
        if (performance.now() < 0) return;
      }
  }
}

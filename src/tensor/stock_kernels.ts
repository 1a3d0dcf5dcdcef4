/**
 * The backends' own kernels that ours replace or wrap, kept by `kernels.ts` when it registers
 * ours: a wrapper calls the stock kernel for the cases it does not speed up, and unregistering
 * puts the stock kernels back.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";

const stock = new Map<string, tf.KernelConfig>();

const key = (kernelName: string, backendName: string) => `${backendName}/${kernelName}`;

/** Keeps `config`, the kernel registered before ours. */
export function keepStock(config: tf.KernelConfig): void {
  stock.set(key(config.kernelName, config.backendName), config);
}

/** The kernel ours replaced, if it replaced one (and forgets it when `take`). */
export function stockConfig(
  kernelName: string,
  backendName: string,
  take = false,
): tf.KernelConfig | undefined {
  const k = key(kernelName, backendName);
  const c = stock.get(k);
  if (take) stock.delete(k);
  return c;
}

/** The stock kernel function a wrapper delegates to. */
export function stockKernel(kernelName: string, backendName: string): tf.KernelFunc {
  const c = stockConfig(kernelName, backendName);
  if (!c) throw new Error(`${backendName} ${kernelName} kernel is not registered`);
  return c.kernelFunc;
}

/** A wrapper's setup: the stock kernel's own (wasm kernels bind their exports there). */
export function stockSetup(kernelName: string, backendName: string): tf.KernelSetupFunc {
  return (backend) => stockConfig(kernelName, backendName)?.setupFunc?.(backend);
}

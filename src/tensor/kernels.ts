/**
 * Every kernel of ours, in one list, registered and unregistered for the backends as tfjs
 * registers its own (`register_all_kernels.ts`): each kernel file exports its `KernelConfig`s,
 * this module puts them in place. A kernel already there is kept (`stock_kernels.ts`) so that
 * wrappers can call it and {@link unregisterKernels} can restore it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { convGradKernelConfigs } from "./conv_grad_kernels.ts";
import { batchMatMulConfig } from "./matmul_transpose.ts";
import { maxPoolGradConfig } from "./maxpool_grad_kernel.ts";
import { keepStock, stockConfig } from "./stock_kernels.ts";
import { sumMeanConfigs } from "./sum_kernel.ts";
import { tileConfig } from "./tile_kernel.ts";
import { webgpuKernelConfigs } from "./webgpu_conv_grad.ts";

/** Our kernels: convolution gradients (wasm, cpu; the filter gradient on webgpu), transposed
 * products, max-pool gradient, leading-axis sums and means, tiling (wasm). */
export const KERNEL_CONFIGS: readonly tf.KernelConfig[] = [
  ...convGradKernelConfigs,
  batchMatMulConfig,
  maxPoolGradConfig,
  ...sumMeanConfigs,
  tileConfig,
  ...webgpuKernelConfigs,
];

/** Ours for one backend, or for all when `backendName` is absent. */
function configsFor(backendName?: string): readonly tf.KernelConfig[] {
  return backendName === undefined
    ? KERNEL_CONFIGS
    : KERNEL_CONFIGS.filter((k) => k.backendName === backendName);
}

/**
 * Registers {@link KERNEL_CONFIGS} (only `backendName`'s when given), keeping each kernel they
 * replace; idempotent.
 */
export function registerKernels(backendName?: string): void {
  for (const k of configsFor(backendName)) {
    const current = tf.getKernel(k.kernelName, k.backendName);
    if (current?.kernelFunc === k.kernelFunc) continue;
    if (current) {
      keepStock(current);
      tf.unregisterKernel(k.kernelName, k.backendName);
    }
    tf.registerKernel(k);
  }
}

/**
 * Unregisters ours (only `backendName`'s when given: `"webgpu"` gives the stock tfjs WebGPU
 * backend that bench/webgpu_check.ts compares against) and puts back the kernels they replaced.
 */
export function unregisterKernels(backendName?: string): void {
  for (const k of configsFor(backendName)) {
    if (tf.getKernel(k.kernelName, k.backendName)?.kernelFunc !== k.kernelFunc) continue;
    tf.unregisterKernel(k.kernelName, k.backendName);
    const stock = stockConfig(k.kernelName, k.backendName, true);
    if (stock) tf.registerKernel(stock);
  }
}

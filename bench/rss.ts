/** Resident-set figures of this process, read from /proc (Linux); current RSS elsewhere. */

function statusField(field: "VmHWM" | "VmRSS"): number | undefined {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(new RegExp(`${field}:\\s+(\\d+)`));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak resident set (VmHWM) in MiB since the process started. */
export function peakRssMiB(): number {
  return statusField("VmHWM") ?? Deno.memoryUsage().rss / 2 ** 20;
}

/** Current resident set in MiB. */
export function rssMiB(): number {
  return statusField("VmRSS") ?? Deno.memoryUsage().rss / 2 ** 20;
}

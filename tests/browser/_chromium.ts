/** What the browser tests share: the system Chromium they drive, and where they save pictures. */

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** Where screenshots (and the report's demo run) go. */
export const OUT = "out/browser";

/**
 * `CHROMIUM`, else the first system binary found; without one it fails naming the package,
 * rather than letting a browser test pass silently.
 */
export async function chromiumPath(): Promise<string> {
  const env = Deno.env.get("CHROMIUM");
  for (const p of env ? [env] : CANDIDATES) {
    if (await Deno.stat(p).then((s) => s.isFile, () => false)) return p;
  }
  throw new Error(
    `no Chromium at ${env ?? CANDIDATES.join(", ")}: install Debian's package ` +
      "(apt-get install -y chromium) or set CHROMIUM to a Chromium binary",
  );
}

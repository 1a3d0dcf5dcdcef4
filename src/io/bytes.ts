/**
 * Byte buffers joined end to end: PNG chunks, weight shards, the parts of a digest.
 *
 * @module
 */

/** `parts` joined into one fresh buffer (always a copy, so it starts at byte offset 0). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

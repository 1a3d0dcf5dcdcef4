/**
 * Composable replies: binary results go out as parts of a `multipart/form-data` body (parse with
 * `await res.formData()` in JS, or any multipart parser), each part named as the next request
 * needs it; JSON is for reports. A client that asks for JSON (`Accept: application/json` or
 * `?format=json`) gets the report alone.
 */
import type { Context } from "hono";

export interface ReplyPart {
  name: string;
  filename?: string;
  type: string;
  bytes: Uint8Array;
}

/** True when the caller wants only the JSON report. */
export function wantsJson(c: Context): boolean {
  if (c.req.query("format") === "json") return true;
  const accept = c.req.header("accept") ?? "";
  return /application\/json/i.test(accept) && !/multipart\//i.test(accept);
}

export function jsonPart(name: string, value: unknown): ReplyPart {
  return {
    name,
    filename: `${name}.json`,
    type: "application/json",
    bytes: new TextEncoder().encode(JSON.stringify(value)),
  };
}

/** A `multipart/form-data` response of `parts`, in order. */
export function multipartReply(parts: ReplyPart[], headers: Record<string, string> = {}): Response {
  const form = new FormData();
  for (const p of parts) {
    form.append(
      p.name,
      new Blob([p.bytes as Uint8Array<ArrayBuffer>], { type: p.type }),
      p.filename ?? p.name,
    );
  }
  const res = new Response(form, { status: 200 });
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
}

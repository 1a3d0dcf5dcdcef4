/**
 * Composable replies: binary results go out as parts of a `multipart/form-data` body (parse with
 * `await res.formData()` in JS, or any multipart parser, or save it and run `deno task unpack`),
 * each part named as the next request needs it; JSON is for reports.
 *
 * One part alone, for shell users: `?part=NAME` on any multipart reply answers that part's bytes
 * with its own content type, and a route may map media types to parts for `Accept` (e.g.
 * `Accept: application/x-npy` on `/v1/attacks` is the `.npy` alone). A client that asks for JSON
 * (`Accept: application/json` or `?format=json`) gets the report alone where the route allows it.
 */
import type { Context } from "hono";
import { z } from "zod";
import { UnprocessableError, ValidationError } from "../errors.ts";

export interface ReplyPart {
  name: string;
  filename?: string;
  type: string;
  bytes: Uint8Array;
}

/** `?format=json`: the report alone, without the binary parts. */
export const FormatQuery = z.enum(["json"]).describe(
  "'json': the report alone as application/json (same as Accept: application/json)",
);

/** The schema of `?part=` for a reply whose parts are `names`. */
export function partQuery(names: readonly [string, ...string[]]): z.ZodType {
  return z.enum(names).describe(
    "answer this part alone, with its own content type, instead of the multipart body",
  );
}

/** True when the caller wants only the JSON report. */
export function wantsJson(c: Context): boolean {
  if (c.req.query("format") === "json") return true;
  const accept = c.req.header("accept") ?? "";
  return /application\/json/i.test(accept) && !/multipart\//i.test(accept);
}

/** The one part a request asks for, and the media type to answer it with (`undefined`: its own). */
export interface PartChoice {
  name: string;
  type?: string;
}

/**
 * Which single part the caller asked for, if any: `?part=NAME` (which must be one of `names`,
 * else a 400 naming them), or an `Accept` header that names one of `accepts`' media types and no
 * multipart type. Checked before any work, so a typo costs nothing.
 */
export function requestedPart(
  c: Context,
  names: readonly string[],
  accepts: Record<string, string> = {},
): PartChoice | undefined {
  const asked = c.req.query("part");
  if (asked !== undefined) {
    if (names.length === 0) {
      throw new ValidationError(
        `?part is for multipart replies; ${c.req.method} ${c.req.path} answers JSON`,
        { parameter: "part" },
      );
    }
    if (!names.includes(asked)) {
      throw new ValidationError(
        `unknown part '${asked.slice(0, 64)}'; this reply's parts are: ${names.join(", ")}`,
        { parameter: "part", allowed: names },
      );
    }
    return { name: asked };
  }
  const accept = c.req.header("accept") ?? "";
  if (/multipart\//i.test(accept)) return undefined;
  for (const [type, name] of Object.entries(accepts)) {
    if (accept.toLowerCase().includes(type)) return { name, type };
  }
  return undefined;
}

export function jsonPart(name: string, value: unknown): ReplyPart {
  return {
    name,
    filename: `${name}.json`,
    type: "application/json",
    bytes: new TextEncoder().encode(JSON.stringify(value)),
  };
}

/**
 * The part `choice` names, alone, as the whole body: its content type (or `choice.type`), and
 * its filename in `Content-Disposition` (what `curl -OJ` saves it as). A name several parts share
 * (a model saved in more than one weight shard) cannot be answered as one body: 422.
 */
export function singlePartReply(
  parts: ReplyPart[],
  choice: PartChoice,
  headers: Record<string, string> = {},
): Response {
  const found = parts.filter((p) => p.name === choice.name);
  if (found.length !== 1) {
    throw new UnprocessableError(
      found.length === 0
        ? `this reply has no '${choice.name}' part`
        : `this reply has ${found.length} '${choice.name}' parts (${
          found.map((p) => p.filename ?? p.name).join(", ")
        }); ask for the multipart reply and unpack it (deno task unpack REPLY DIR)`,
      { part: choice.name, count: found.length },
    );
  }
  const p = found[0];
  const res = new Response(p.bytes as Uint8Array<ArrayBuffer>, {
    status: 200,
    headers: {
      "content-type": choice.type ?? p.type,
      "content-disposition": `attachment; filename="${
        (p.filename ?? p.name).replace(/[^\w.+-]/g, "_")
      }"`,
    },
  });
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
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

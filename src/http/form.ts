/**
 * Reading a compute request's `multipart/form-data` body with limits, and typed access to its
 * parts. Every failure is a named 4xx: wrong media type 415, too many parts 413, a missing part
 * 400, params that fail their zod schema 400.
 */
import type { z } from "zod";
import {
  ClientClosedRequestError,
  LimitExceededError,
  MalformedInputError,
  MissingPartError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../errors.ts";
import { parseJsonText } from "../io/json_guard.ts";

export interface FilePart {
  name: string;
  bytes: Uint8Array;
  type: string;
}

/** A request's parts by field name, in arrival order: plain data, so it can be sent to a worker. */
export type PartMap = Record<string, FilePart[]>;

/**
 * Typed access to a request's parts. Built from bytes already read (the HTTP thread reads the
 * body once; the engine worker gets the same {@link PartMap} with its buffers transferred).
 */
export class Form {
  constructor(readonly parts: PartMap) {}

  /** Every entry under `field`, as bytes (text fields are UTF-8 bytes named after the field). */
  files(field: string): Promise<FilePart[]> {
    return Promise.resolve(Object.hasOwn(this.parts, field) ? this.parts[field] : []);
  }

  /** Exactly one entry under `field`; `undefined` when absent and not required. */
  async file(field: string, required: true): Promise<FilePart>;
  async file(field: string, required?: false): Promise<FilePart | undefined>;
  async file(field: string, required = false): Promise<FilePart | undefined> {
    const all = await this.files(field);
    if (all.length > 1) {
      throw new MalformedInputError(`part '${field}' must appear once, got ${all.length}`);
    }
    if (all.length === 0 && required) throw new MissingPartError(field);
    return all[0];
  }

  /** The distinct buffers behind every part (the transfer list that hands them to a worker). */
  buffers(): ArrayBuffer[] {
    const out = new Set<ArrayBuffer>();
    for (const list of Object.values(this.parts)) {
      for (const p of list) out.add(p.bytes.buffer as ArrayBuffer);
    }
    return [...out];
  }

  has(field: string): boolean {
    return Object.hasOwn(this.parts, field) && this.parts[field].length > 0;
  }

  /** Parses the JSON part `field` (default `{}` when absent) through `schema`. */
  async json<S extends z.ZodType>(field: string, schema: S): Promise<z.infer<S>> {
    const part = await this.file(field);
    return parseJson(part ? new TextDecoder().decode(part.bytes) : "{}", schema, field);
  }
}

/**
 * The guarded `JSON.parse` of `src/io/json_guard.ts` (nesting deeper than `MAX_JSON_DEPTH` and
 * prototype-shaped keys are 400s, so no deep value reaches zod or the code after it) + zod, with
 * 400s that say which field failed and why.
 */
export function parseJson<S extends z.ZodType>(text: string, schema: S, what: string): z.infer<S> {
  const raw = parseJsonText(text, `'${what}'`);
  const r = schema.safeParse(raw);
  if (!r.success) {
    throw ValidationError.fromZod(r.error, {
      label: `'${what}' is invalid`,
      root: what,
      prefix: what,
    });
  }
  return r.data;
}

/**
 * Reads a multipart body into memory; refuses other media types (415) and too many parts (413).
 * A client that goes away while its body is read is a 499 (nobody reads the answer), not a 400.
 */
export async function readForm(req: Request, limits: { maxParts: number }): Promise<Form> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^multipart\/form-data\s*;/i.test(type)) {
    throw new UnsupportedMediaTypeError(
      `expected 'multipart/form-data' (with a boundary), got '${type.slice(0, 100) || "none"}'`,
    );
  }
  let data: FormData;
  try {
    data = await req.formData();
  } catch (e) {
    if (e instanceof LimitExceededError) throw e;
    if (req.signal.aborted || isConnectionLoss(e)) throw new ClientClosedRequestError();
    throw new MalformedInputError(
      `the multipart body could not be parsed: ${(e as Error).message}`,
    );
  }
  let count = 0;
  for (const _ of data.keys()) count++;
  if (count > limits.maxParts) {
    throw new LimitExceededError(`too many multipart parts: ${count} > ${limits.maxParts}`, {
      parts: count,
      limit: limits.maxParts,
    });
  }
  // No prototype: a part named '__proto__' is just a field.
  const parts: PartMap = Object.create(null);
  for (const [field, v] of data.entries()) {
    const part = typeof v === "string"
      ? { name: field, bytes: new TextEncoder().encode(v), type: "text/plain" }
      : { name: v.name, bytes: new Uint8Array(await v.arrayBuffer()), type: v.type };
    (Object.hasOwn(parts, field) ? parts[field] : (parts[field] = [])).push(part);
  }
  return new Form(parts);
}

/** Errors Deno's body reader raises when the peer resets or closes mid-body. */
function isConnectionLoss(e: unknown): boolean {
  const name = (e as { name?: string })?.name ?? "";
  return ["BadResource", "ConnectionReset", "ConnectionAborted", "BrokenPipe", "UnexpectedEof"]
    .includes(name) || /connection (reset|closed|aborted)|body (read|stream) (failed|aborted)/i
    .test(String((e as Error)?.message ?? ""));
}

/**
 * Reading a compute request's `multipart/form-data` body with limits, and typed access to its
 * parts. Every failure is a named 4xx: wrong media type 415, too many parts 413, a missing part
 * 400, params that fail their zod schema 400.
 */
import type { z } from "zod";
import {
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

export class Form {
  constructor(readonly data: FormData) {}

  /** Every entry under `field`, as bytes (text fields become UTF-8 bytes named after the field). */
  async files(field: string): Promise<FilePart[]> {
    const out: FilePart[] = [];
    for (const v of this.data.getAll(field)) {
      if (typeof v === "string") {
        out.push({ name: field, bytes: new TextEncoder().encode(v), type: "text/plain" });
      } else {
        out.push({ name: v.name, bytes: new Uint8Array(await v.arrayBuffer()), type: v.type });
      }
    }
    return out;
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

  has(field: string): boolean {
    return this.data.has(field);
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
    const issues = r.error.issues.map((i) => ({
      path: [what, ...i.path.map(String)].join("."),
      message: i.message,
    }));
    throw new ValidationError(
      `'${what}' is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
      { issues },
    );
  }
  return r.data;
}

/** Reads a multipart body; refuses other media types (415) and too many parts (413). */
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
    throw new MalformedInputError(
      `the multipart body could not be parsed: ${(e as Error).message}`,
    );
  }
  let parts = 0;
  for (const _ of data.keys()) parts++;
  if (parts > limits.maxParts) {
    throw new LimitExceededError(`too many multipart parts: ${parts} > ${limits.maxParts}`, {
      parts,
      limit: limits.maxParts,
    });
  }
  return new Form(data);
}

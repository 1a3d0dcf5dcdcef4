/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests (zod 4's
 * JSON Schema 2020-12 output is OpenAPI 3.1's schema dialect). Routes describe themselves with
 * {@link Operation}s; the curl examples come from `examples.ts`; nothing here is written by hand
 * twice. `tests/http/openapi_test.ts` checks the document with an OpenAPI validator.
 */
import { z } from "zod";
import { exampleKey, EXAMPLES } from "./examples.ts";

export interface Part {
  name: string;
  description: string;
  required?: boolean;
  /** Several files may be sent under this name. */
  multiple?: boolean;
  /** A JSON part validated by this schema (sent with `contentType: application/json`). */
  schema?: z.ZodType;
  /** Media types a file part may have, comma-separated as OpenAPI's `encoding` writes them. */
  contentType?: string;
}

/** One part of a multipart reply, as the route sends it. */
export interface ReplyPartDoc {
  name: string;
  description: string;
  /** Its media type. */
  contentType: string;
  /** The filename it declares (what `deno task unpack` writes it as). */
  filename: string;
}

/** A query parameter, its values validated (and documented) by `schema`. */
export interface QueryParam {
  name: string;
  description: string;
  schema: z.ZodType;
}

export interface Operation {
  method: "get" | "post";
  path: string;
  summary: string;
  description?: string;
  /** Optional query parameters. */
  query?: QueryParam[];
  /** Multipart parts of the request body, when there is one. */
  parts?: Part[];
  /** JSON schema of a 200 JSON answer (unused when `replyParts` describes a multipart one). */
  response?: z.ZodType;
  /** Media type of a 200 answer that is not JSON. */
  responseType?: string;
  /** The parts of a `multipart/form-data` 200 answer, in order. */
  replyParts?: ReplyPartDoc[];
  open?: boolean;
}

export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe("stable machine-readable code, e.g. shape_mismatch"),
    message: z.string().describe("what was wrong and what is allowed"),
    details: z.unknown().optional().describe("the limit, the allowed values or the issues"),
  }),
});

const ERROR_STATUSES: Record<string, string> = {
  "400": "malformed input or invalid params",
  "401": "missing or wrong bearer token (only when API_TOKEN is set)",
  "413": "a size limit was exceeded",
  "415": "wrong media type",
  "422": "well-formed but unusable input (shape mismatch, unsupported model, cost over budget, " +
    "non-finite model outputs, a model that crashes the tensor engine)",
  "503": "saturated, or the tensor engine is restarting: retry after the Retry-After header",
  "504": "time budget exceeded",
};

const BINARY = { type: "string", format: "binary" };

/** A schema as OpenAPI 3.1 embeds it: JSON Schema 2020-12 without its `$schema` line. */
export function jsonSchema(
  s: z.ZodType,
  io: "input" | "output" = "input",
): Record<string, unknown> {
  const out = z.toJSONSchema(s, { target: "draft-2020-12", unrepresentable: "any", io }) as Record<
    string,
    unknown
  >;
  delete out.$schema;
  return out;
}

function withDescription(schema: Record<string, unknown>, description: string) {
  return { ...schema, description };
}

function requestBody(parts: Part[]): unknown {
  const properties: Record<string, unknown> = {};
  const encoding: Record<string, { contentType: string }> = {};
  const required: string[] = [];
  for (const p of parts) {
    const one = p.schema
      ? withDescription(jsonSchema(p.schema), p.description)
      : { ...BINARY, description: p.description };
    properties[p.name] = p.multiple
      ? { type: "array", items: one, description: p.description }
      : one;
    const type = p.schema ? "application/json" : p.contentType;
    if (type) encoding[p.name] = { contentType: type };
    if (p.required) required.push(p.name);
  }
  return {
    required: true,
    content: {
      "multipart/form-data": { schema: { type: "object", properties, required }, encoding },
    },
  };
}

/** The 200 answer: JSON, another media type, or multipart with each part described. */
function success(op: Operation): Record<string, unknown> {
  if (op.replyParts) {
    const properties: Record<string, unknown> = {};
    const encoding: Record<string, { contentType: string }> = {};
    for (const p of op.replyParts) {
      properties[p.name] = { ...BINARY, description: `${p.filename}: ${p.description}` };
      encoding[p.name] = { contentType: p.contentType };
    }
    const content: Record<string, unknown> = {
      "multipart/form-data": {
        schema: { type: "object", properties, required: op.replyParts.map((p) => p.name) },
        encoding,
      },
    };
    // `?part=NAME` answers one part alone with its own media type.
    for (const p of op.replyParts) content[p.contentType] ??= { schema: BINARY };
    return {
      description: "multipart/form-data, one part per result; ?part=NAME: that part alone",
      content,
    };
  }
  if (op.responseType) return { description: "success", content: { [op.responseType]: {} } };
  return {
    description: "success",
    content: {
      "application/json": { schema: op.response ? jsonSchema(op.response, "output") : {} },
    },
  };
}

export function buildOpenApi(ops: Operation[], version: string): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ops) {
    const responses: Record<string, unknown> = { "200": success(op) };
    if (op.parts || !op.open) {
      for (const [code, description] of Object.entries(ERROR_STATUSES)) {
        if (op.open && code === "401") continue;
        responses[code] = {
          description,
          content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
        };
      }
    }
    const operation: Record<string, unknown> = {
      operationId: `${op.method}${
        op.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c) => (c ?? "").toUpperCase())
      }`,
      summary: op.summary,
      description: op.description,
      responses,
      security: op.open ? [] : undefined,
    };
    if (op.query?.length) {
      operation.parameters = op.query.map((q) => ({
        name: q.name,
        in: "query",
        required: false,
        description: q.description,
        schema: jsonSchema(q.schema),
      }));
    }
    if (op.parts) operation.requestBody = requestBody(op.parts);
    const example = EXAMPLES[exampleKey(op.method, op.path)];
    if (example) operation["x-codeSamples"] = [{ lang: "Shell", label: "curl", source: example }];
    (paths[op.path] ??= {})[op.method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "purifier",
      version,
      description:
        "Detect poisoned images, attack, evaluate and purify image classifiers (Progressive " +
        "Unified Defense, Hua et al., arXiv 2405.17929). Pixel space is [0,1] everywhere. " +
        "Compute endpoints take multipart/form-data; `params` is a JSON part.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { Error: jsonSchema(ErrorBody, "output") },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests (zod 4's
 * JSON Schema output is valid OpenAPI 3.1 schema). Routes describe themselves with
 * {@link Operation}s; nothing here is written by hand twice.
 */
import { z } from "zod";

export interface Part {
  name: string;
  description: string;
  required?: boolean;
  /** Several files may be sent under this name. */
  multiple?: boolean;
  /** A JSON part validated by this schema. */
  schema?: z.ZodType;
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
  /** JSON schema of a 200 JSON answer. */
  response?: z.ZodType;
  /** Media type of a 200 answer that is not JSON. */
  responseType?: string;
  open?: boolean;
}

export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe("stable machine-readable code, e.g. shape_mismatch"),
    message: z.string().describe("what was wrong and what is allowed"),
    details: z.unknown().optional(),
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

function jsonSchema(s: z.ZodType): unknown {
  return z.toJSONSchema(s, { target: "openapi-3.0", unrepresentable: "any", io: "input" });
}

export function buildOpenApi(ops: Operation[], version: string): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ops) {
    const responses: Record<string, unknown> = {
      "200": {
        description: "success",
        content: op.responseType
          ? { [op.responseType]: {} }
          : { "application/json": { schema: op.response ? jsonSchema(op.response) : {} } },
      },
    };
    if (op.parts || !op.open) {
      for (const [code, description] of Object.entries(ERROR_STATUSES)) {
        if (op.open && code === "401") continue;
        responses[code] = {
          description,
          content: { "application/json": { schema: jsonSchema(ErrorBody) } },
        };
      }
    }
    const operation: Record<string, unknown> = {
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
    if (op.parts) {
      const properties: Record<string, unknown> = {};
      const required: string[] = [];
      for (const p of op.parts) {
        const one = p.schema
          ? { ...(jsonSchema(p.schema) as object), description: p.description }
          : { type: "string", format: "binary", description: p.description };
        properties[p.name] = p.multiple ? { type: "array", items: one } : one;
        if (p.required) required.push(p.name);
      }
      operation.requestBody = {
        required: true,
        content: { "multipart/form-data": { schema: { type: "object", properties, required } } },
      };
    }
    (paths[op.path] ??= {})[op.method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "purifier",
      version,
      description:
        "Detect poisoned images, attack, evaluate and purify image classifiers (Progressive " +
        "Unified Defense, Hua et al., arXiv 2405.17929). Pixel space is [0,1] everywhere.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

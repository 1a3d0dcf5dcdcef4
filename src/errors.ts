/**
 * Named, expected failures. Each carries its HTTP status and a stable machine-readable `code`;
 * `src/app.ts` maps them to `{"error": {"code", "message", "details"}}` in one `onError`.
 * Anything that is not an `HttpError` is a bug and becomes a 500 without a stack trace.
 */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 405 | 413 | 415 | 422 | 429 | 499 | 503 | 504,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The request could not be parsed: bad JSON, a corrupt `.npy` header, an undecodable PNG. */
export class MalformedInputError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(400, "malformed_input", message, details);
  }
}

/** A required multipart part is absent. */
export class MissingPartError extends HttpError {
  constructor(part: string, details?: unknown) {
    super(400, "missing_part", `multipart part '${part}' is required`, details);
  }
}

/** One failed check of a document, as a 400's `details.issues` lists it. */
export interface ValidationIssue {
  /** Dotted path of the field (`root` for the document itself). */
  path: string;
  message: string;
}

/** How {@link ValidationError.fromZod} names a document and its fields. */
export interface ZodDocument {
  /** Starts the message: `invalid schedule`, `'params' is invalid`. */
  label: string;
  /** Path of an issue about the whole document. */
  root: string;
  /** Prepended to every issue's path (a form part's name). Default: none. */
  prefix?: string;
  /** Appended to the message, e.g. what to send instead. */
  hint?: string;
  /** Most issues listed. Default: all. */
  max?: number;
}

/** Params, state or another JSON document failed schema validation. */
export class ValidationError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(400, "invalid_params", message, details);
  }

  /**
   * The one way a failed zod parse becomes a 400: the message lists each issue as
   * `path: message`, `details.issues` holds the same as {@link ValidationIssue}s.
   */
  static fromZod(
    error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] },
    doc: ZodDocument,
  ): ValidationError {
    const issues: ValidationIssue[] = error.issues.slice(0, doc.max).map((i) => {
      const parts = [...(doc.prefix === undefined ? [] : [doc.prefix]), ...i.path.map(String)];
      return { path: parts.length > 0 ? parts.join(".") : doc.root, message: i.message };
    });
    const listed = issues.map((i) => `${i.path}: ${i.message}`).join("; ");
    return new ValidationError(
      `${doc.label}: ${listed}${doc.hint === undefined ? "" : `; ${doc.hint}`}`,
      { issues },
    );
  }
}

/** A configured size limit (bytes, parts, images, parameters) was exceeded. */
export class LimitExceededError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(413, "limit_exceeded", message, details);
  }
}

/** The request's content type (or a part's) is not one this endpoint accepts. */
export class UnsupportedMediaTypeError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(415, "unsupported_media_type", message, details);
  }
}

/** Well-formed inputs that do not fit together: image shape vs model input, label count. */
export class ShapeMismatchError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(422, "shape_mismatch", message, details);
  }
}

/** A model bundle that parses but cannot be used: unknown layer, missing shard, NaN weights. */
export class UnsupportedModelError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(422, "unsupported_model", message, details);
  }
}

/** Well-formed but unusable input that is neither a shape nor a model problem. */
export class UnprocessableError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(422, "unprocessable", message, details);
  }
}

/** The estimated cost of a request exceeds the configured budget; refused before any work. */
export class CostExceededError extends HttpError {
  constructor(message: string, details?: unknown) {
    super(422, "cost_exceeded", message, details);
  }
}

/**
 * The model produced NaN or an infinity (logits, probabilities, gradients or trained weights) on
 * the given inputs; `where` names the output. Such a result is refused rather than sent as `null`.
 */
export class NonFiniteError extends HttpError {
  constructor(where: string, details?: Record<string, unknown>) {
    super(
      422,
      "non_finite",
      `the model produced a non-finite value (NaN or infinity) in ${where} on these inputs; ` +
        "check the weights and the preprocessing",
      { where, ...details },
    );
  }
}

/** Missing or wrong bearer token. */
export class UnauthorizedError extends HttpError {
  constructor() {
    super(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required");
  }
}

/** The request ran past its time budget and was stopped. */
export class TimeBudgetExceededError extends HttpError {
  constructor(budgetMs: number) {
    super(504, "time_budget_exceeded", `the request exceeded its time budget of ${budgetMs} ms`, {
      budgetMs,
    });
  }
}

/**
 * The client closed the connection before the answer was ready; its work was stopped. Nobody reads
 * the reply: 499 (nginx's "client closed request") keeps these apart from errors in logs and
 * metrics.
 */
export class ClientClosedRequestError extends HttpError {
  constructor() {
    super(499, "client_closed_request", "the client closed the connection; the work was stopped");
  }
}

/** The work queue is full; `retryAfterS` goes out as `Retry-After`. */
export class SaturatedError extends HttpError {
  constructor(readonly retryAfterS: number) {
    super(503, "saturated", "the service is busy; retry later", { retryAfterS });
  }
}

/** Throws `err` unless `cond` holds; keeps parsers terse. */
export function ensure(cond: unknown, err: () => HttpError): asserts cond {
  if (!cond) throw err();
}

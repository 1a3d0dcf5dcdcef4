/**
 * The client's HTTP layer: multipart POSTs with retry and exponential backoff on network errors,
 * 5xx, 429 and 503 (honouring Retry-After). Rounds are stateless, so a retried round is safe.
 */
export interface RetryOptions {
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  token?: string;
  onRetry?: (attempt: number, reason: string, delayMs: number) => void;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 8, baseDelayMs: 500, maxDelayMs: 30_000 };

/** An answer the server gave that retrying cannot fix (4xx other than 429). */
export class RequestFailedError extends Error {
  constructor(readonly status: number, readonly body: string) {
    super(`server answered ${status}: ${body.slice(0, 500)}`);
    this.name = "RequestFailedError";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POSTs a freshly built form (`build` is called per attempt) until it succeeds or gives up. */
export async function postWithRetry(
  url: string,
  build: () => FormData,
  opts: RetryOptions = DEFAULT_RETRY,
  headers: Record<string, string> = {},
): Promise<Response> {
  let last = "";
  for (let attempt = 0; attempt <= opts.retries; attempt++) {
    let delay = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** attempt);
    try {
      const res = await fetch(url, {
        method: "POST",
        body: build(),
        headers: {
          ...headers,
          ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
        },
      });
      if (res.ok) return res;
      const body = await res.text();
      if (res.status < 500 && res.status !== 429) throw new RequestFailedError(res.status, body);
      const after = Number(res.headers.get("retry-after"));
      if (Number.isFinite(after) && after > 0) delay = Math.max(delay, after * 1000);
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (e) {
      if (e instanceof RequestFailedError) throw e;
      last = (e as Error).message;
    }
    if (attempt === opts.retries) break;
    opts.onRetry?.(attempt + 1, last, delay);
    await sleep(delay);
  }
  throw new Error(`gave up after ${opts.retries + 1} attempts: ${last}`);
}

/** Errors across the thread boundary: a named HTTP error stays that status, code and details. */
import { HttpError } from "../errors.ts";
import type { WireError } from "./protocol.ts";

export function toWire(err: unknown, fault?: WireError["fault"]): WireError {
  if (err instanceof HttpError) {
    return {
      name: err.name,
      message: err.message,
      status: err.status,
      code: err.code,
      details: safeClone(err.details),
    };
  }
  if (err instanceof Error) return { name: err.name, message: err.message, fault };
  return { name: "Error", message: String(err), fault };
}

/** An error of the same status and code as the one thrown on the other side. */
export function fromWire(w: WireError): Error {
  if (w.status !== undefined && w.code !== undefined) {
    const e = new HttpError(w.status as HttpError["status"], w.code, w.message, w.details);
    e.name = w.name;
    return e;
  }
  const e = new Error(w.message);
  e.name = w.name;
  return e;
}

/** Details are plain data by design; anything that will not clone is dropped, not fatal. */
function safeClone(v: unknown): unknown {
  try {
    return structuredClone(v);
  } catch {
    return undefined;
  }
}

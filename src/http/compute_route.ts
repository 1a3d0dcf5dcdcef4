/**
 * The one skeleton of every compute route: read the multipart form, validate `params` (and any
 * other JSON part), parse the model bundle(s), run the named engine op on a free engine, reply.
 * Everything up to the engine runs here, on the HTTP thread, so malformed requests are refused
 * without waiting for an engine; images and labels are decoded in the engine, next to the model
 * whose input shape they must fit.
 */
import type { Context, Handler } from "hono";
import type { z } from "zod";
import type { JobOutput, OpName } from "../engine/protocol.ts";
import type { BundleArtifacts } from "../io/model_bundle.ts";
import type { AppEnv } from "./env.ts";
import { type Form, readForm } from "./form.ts";
import { readBundle } from "./inputs.ts";
import { jsonPart, multipartReply, requestedPart, singlePartReply, wantsJson } from "./reply.ts";

export interface ComputeRoute<S extends z.ZodType> {
  /** The engine op that does the work. */
  op: OpName;
  /** Schema of the `params` part. */
  params: S;
  /** Prefixes of optional extra bundles (e.g. `purified_` for `purified_model`). */
  optionalBundles?: string[];
  /** Other parts to parse on the HTTP thread, handed to the op as `extras`. */
  extras?: (form: Form) => Promise<Record<string, unknown>>;
  /**
   * The reply. Default: a result with binary parts is multipart (the parts, then `report`), or
   * its JSON alone when the client asks for JSON and `jsonAlone` allows it; otherwise JSON.
   */
  reply?: (c: Context<AppEnv>, out: JobOutput, startedAt: number) => Response | Promise<Response>;
  /** Whether `Accept: application/json` / `?format=json` may drop the binary parts. */
  jsonAlone?: boolean;
  /** Names of the default reply's parts (`report` last), which `?part=NAME` may ask for alone. */
  replyParts?: readonly string[];
  /** Media types that, in `Accept`, ask for one part alone, e.g. `application/x-npy`. */
  accepts?: Record<string, string>;
}

/** A Hono handler for `spec`. */
export function computeHandler<S extends z.ZodType>(spec: ComputeRoute<S>): Handler<AppEnv> {
  return async (c) => {
    const startedAt = performance.now();
    const { config, queue, engine } = c.get("services");
    const signal = c.get("signal");
    const single = spec.reply ? undefined : requestedPart(c, spec.replyParts ?? [], spec.accepts);
    const form = await readForm(c.req.raw, { maxParts: config.MAX_PARTS });
    const params = await form.json("params", spec.params);
    const extras = spec.extras ? await spec.extras(form) : {};
    const bundles: Record<string, BundleArtifacts> = { "": await readBundle(form, config) };
    for (const prefix of spec.optionalBundles ?? []) {
      if (form.has(`${prefix}model`)) bundles[prefix] = await readBundle(form, config, prefix);
    }
    const input = { params, parts: form.parts, bundles, extras, config };
    const out = await queue.run(
      () =>
        engine.run(spec.op, input, {
          signal,
          fault: config.ENGINE_TEST_HOOKS ? c.req.header("x-engine-fault") : undefined,
          transfer: transferList(form, bundles),
        }),
      signal,
    );
    if (spec.reply) return await spec.reply(c, out, startedAt);
    const parts = [...out.parts, jsonPart("report", out.json)];
    if (single) return singlePartReply(parts, single, out.headers);
    if (out.parts.length === 0 || (spec.jsonAlone && wantsJson(c))) {
      return c.json(out.json as object);
    }
    return multipartReply(parts, out.headers);
  };
}

/** The buffers of every part and bundle, each once: moved to the engine, never copied. */
function transferList(form: Form, bundles: Record<string, BundleArtifacts>): ArrayBuffer[] {
  const out = new Set(form.buffers());
  for (const b of Object.values(bundles)) {
    const data = b.weightData;
    for (const buf of Array.isArray(data) ? data : data ? [data] : []) {
      if (buf instanceof ArrayBuffer) out.add(buf);
    }
  }
  return [...out].filter((b) => b.byteLength > 0);
}

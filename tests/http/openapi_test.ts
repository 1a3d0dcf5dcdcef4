/**
 * The OpenAPI document checked by tools, not by eye: `@seriousme/openapi-schema-validator`
 * validates it against the OpenAPI 3.1 schema, Ajv compiles every schema in it as JSON Schema
 * 2020-12 (OpenAPI 3.1's dialect, which the 3.1 meta-schema leaves unchecked), and real replies
 * of the service validate against the response schemas the document gives.
 */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { DetectReply } from "../../routes/detect.ts";
import { exampleKey, EXAMPLES } from "../../src/http/examples.ts";
import { fixtureForm, testApp } from "../_helpers.ts";

type Json = Record<string, unknown>;

async function documentOf(): Promise<Json> {
  const app = await testApp();
  return await (await app.request("/openapi.json")).json();
}

/** Every `schema` object in the document, with where it sits. */
function schemasIn(node: unknown, where = "#", out: [string, Json][] = []): [string, Json][] {
  if (node === null || typeof node !== "object") return out;
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === "schema" && v && typeof v === "object") out.push([`${where}/${k}`, v as Json]);
    else schemasIn(v, `${where}/${k}`, out);
  }
  return out;
}

function ajv() {
  return new Ajv2020({ strict: true, allErrors: true, validateFormats: false, keywords: [] });
}

Deno.test("the OpenAPI document passes an OpenAPI 3.1 validator", async () => {
  const doc = await documentOf();
  const v = new Validator();
  const result = await v.validate(doc);
  assert.deepEqual(result, { valid: true }, JSON.stringify(result.errors)?.slice(0, 2000));
  assert.equal(v.version, "3.1");
  console.log(`OpenAPI validator: ${JSON.stringify(result)} (version ${v.version})`);
});

Deno.test("the validator refuses a broken document (so its 'valid' means something)", async () => {
  const doc = structuredClone(await documentOf()) as {
    paths: Record<string, Record<string, { parameters: Json[] }>>;
  };
  doc.paths["/v1/attacks"].post.parameters[0].in = "body";
  const result = await new Validator().validate(doc);
  assert.equal(result.valid, false);
  const doc2 = structuredClone(await documentOf()) as Json;
  doc2.openapi = "3.1.0";
  (doc2.info as Json).title = 7;
  assert.equal((await new Validator().validate(doc2)).valid, false);
});

Deno.test("every schema in the document compiles as JSON Schema 2020-12 in strict mode", async () => {
  const doc = await documentOf();
  const schemas = schemasIn(doc);
  assert.ok(schemas.length > 40, `${schemas.length} schemas`);
  const components = (doc.components as { schemas: Record<string, Json> }).schemas;
  for (const [where, s] of schemas) {
    // The one reference the document uses, inlined so each schema stands alone.
    const text = JSON.stringify(s).replaceAll(
      '{"$ref":"#/components/schemas/Error"}',
      JSON.stringify(components.Error),
    );
    assert.doesNotMatch(text, /\$ref/, where);
    assert.doesNotThrow(() => ajv().compile(JSON.parse(text)), where);
  }
  // `nullable` is OpenAPI 3.0's; in 3.1 it means nothing and a null would be refused.
  assert.doesNotMatch(JSON.stringify(doc), /"nullable"/);
});

Deno.test("multipart bodies say which parts are JSON, and replies describe each part", async () => {
  const doc = await documentOf() as { paths: Record<string, Record<string, Json>> };
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const body = (op.requestBody as { content: Record<string, Json> } | undefined)?.content;
      const form = body?.["multipart/form-data"] as
        | { schema: { properties: Record<string, Json> }; encoding: Record<string, Json> }
        | undefined;
      if (form) {
        assert.deepEqual(form.encoding.params, { contentType: "application/json" }, path);
        for (const [name, part] of Object.entries(form.schema.properties)) {
          assert.ok(part.description, `${method} ${path}: part ${name} has a description`);
          if (part.type === "object" || part.oneOf || part.anyOf) {
            assert.deepEqual(form.encoding[name], { contentType: "application/json" }, name);
          }
        }
        for (const name of ["model", "weights", "images"]) {
          assert.ok(form.encoding[name]?.contentType, `${method} ${path}: ${name}'s type`);
        }
      }
      assert.ok(EXAMPLES[exampleKey(method, path)], `${method} ${path} has a curl example`);
      assert.match(JSON.stringify(op["x-codeSamples"]), /curl /);
    }
  }
  for (const path of ["/v1/attacks", "/v1/purify/rounds"]) {
    const ok = (doc.paths[path].post.responses as Record<string, { content: Json }>)["200"];
    const multi = ok.content["multipart/form-data"] as {
      schema: { properties: Record<string, Json> };
      encoding: Record<string, { contentType: string }>;
    };
    for (const [name, part] of Object.entries(multi.schema.properties)) {
      assert.ok(part.description, `${path}: reply part ${name} is described`);
      assert.ok(multi.encoding[name].contentType, `${path}: reply part ${name} has a type`);
    }
  }
  const rounds =
    (doc.paths["/v1/purify/rounds"].post.responses as Record<string, { content: Json }>)[
      "200"
    ].content["multipart/form-data"] as { schema: { properties: Json } };
  assert.deepEqual(Object.keys(rounds.schema.properties), ["model", "weights", "state", "report"]);
});

Deno.test("a real /v1/detect reply matches the response schema of the document and of zod", async () => {
  const app = await testApp();
  const doc = await (await app.request("/openapi.json")).json();
  const isPoison = Array.from({ length: 64 }, (_, i) => (i % 16 < 2 ? 1 : 0));
  for (const method of ["spectral", "activation-clustering"]) {
    const form = fixtureForm({ labels: true, params: { method } });
    form.append("is_poison", JSON.stringify(isPoison));
    const res = await app.request("/v1/detect", { method: "POST", body: form });
    assert.equal(res.status, 200);
    const body = await res.json();
    // Every key of the reply is in the schema (strict), and the schema's JSON Schema agrees.
    const parsed = DetectReply.strict().parse(body);
    const schema = doc.paths["/v1/detect"].post.responses["200"].content["application/json"]
      .schema;
    const validate = ajv().compile(schema);
    assert.ok(validate(body), JSON.stringify(validate.errors));
    assert.ok((parsed.metrics?.roc.length ?? 0) > 1);
  }
});

Deno.test("the detect schema refuses a reply that breaks it (a flag of 2, a missing score list)", async () => {
  const doc = await documentOf() as {
    paths: Record<string, Record<string, { responses: Record<string, { content: Json }> }>>;
  };
  const schema = (doc.paths["/v1/detect"].post.responses["200"].content["application/json"] as Json)
    .schema as Json;
  const validate = ajv().compile(schema);
  const good = {
    method: "spectral",
    n: 1,
    flagged: 0,
    flagged_fraction: 0,
    suspected_target: null,
    threshold: { rule: "fpr", value: 1.5, description: "x" },
    per_class: [{ class: 0, n: 1, flagged: 0 }],
    cost: 1,
    batch_size: 128,
    time_ms: 3,
    backend: "wasm",
    scores: [0.5],
    flags: [0],
    flagged_indices: [],
  };
  assert.ok(validate(good), JSON.stringify(validate.errors));
  assert.equal(validate({ ...good, flags: [2] }), false);
  const { scores: _, ...noScores } = good;
  assert.equal(validate(noScores), false);
  assert.equal(validate({ ...good, batch_size: 0 }), false);
});

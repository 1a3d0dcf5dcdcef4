/**
 * `GET /docs`: a self-contained HTML reference rendered from the OpenAPI document. No scripts or
 * stylesheets are fetched, so it works behind an air-gapped gateway.
 */
const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

interface Doc {
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, Record<string, unknown>>>;
}

export function renderDocs(openapi: unknown): string {
  const doc = openapi as Doc;
  const sections: string[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const body = op.requestBody as
        | {
          content: {
            "multipart/form-data": { schema: { properties: object; required: string[] } };
          };
        }
        | undefined;
      const parts = body?.content["multipart/form-data"].schema;
      const rows = parts
        ? Object.entries(parts.properties).map(([name, s]) => {
          const schema = s as { description?: string; type?: string; format?: string };
          const isFile = schema.format === "binary" ||
            (schema.type === "array" &&
              (s as { items: { format?: string } }).items.format === "binary");
          const detail = isFile ? "file" : `<pre>${esc(JSON.stringify(s, null, 2))}</pre>`;
          return `<tr><td><code>${esc(name)}</code>${
            parts.required.includes(name) ? " *" : ""
          }</td><td>${esc(schema.description ?? "")}</td><td>${detail}</td></tr>`;
        }).join("")
        : "";
      sections.push(
        `<section><h2><span class="m">${method.toUpperCase()}</span> <code>${
          esc(path)
        }</code></h2><p>${esc(String(op.summary ?? ""))}</p>${
          op.description ? `<p>${esc(String(op.description))}</p>` : ""
        }${
          rows ? `<table><tr><th>part</th><th>what</th><th>schema</th></tr>${rows}</table>` : ""
        }<details><summary>responses</summary><pre>${
          esc(JSON.stringify(op.responses, null, 2))
        }</pre></details></section>`,
      );
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${
    esc(doc.info.title)
  } API</title><style>body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}
section{border-top:1px solid #ddd;padding:.5em 0}.m{background:#234;color:#fff;padding:0 .4em;border-radius:3px}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px;vertical-align:top;text-align:left}
pre{font-size:12px;max-height:24em;overflow:auto;margin:0}</style></head><body><h1>${
    esc(doc.info.title)
  } <small>${esc(doc.info.version)}</small></h1><p>${
    esc(doc.info.description)
  }</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Errors are JSON: <code>{"error":{"code","message","details"}}</code>.</p>${
    sections.join("")
  }</body></html>`;
}

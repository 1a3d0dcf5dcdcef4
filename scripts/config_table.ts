/** Prints the README's configuration table from the one zod schema in src/config.ts. */
import { ConfigSchema } from "../src/config.ts";
import { z } from "zod";

const json = z.toJSONSchema(ConfigSchema, { io: "input" }) as {
  properties: Record<string, { description?: string; default?: unknown; enum?: string[] }>;
};
console.log("| variable | default | meaning |\n|---|---|---|");
for (const [k, v] of Object.entries(json.properties)) {
  const def = v.default === undefined ? "—" : `\`${v.default}\``;
  const allowed = v.enum ? ` (${v.enum.join(", ")})` : "";
  console.log(`| \`${k}\` | ${def} | ${v.description ?? ""}${allowed} |`);
}

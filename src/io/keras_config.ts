/**
 * Reading Keras model JSON the way tfjs-layers 4.22 reads it, shared by the bundle parser, the
 * layer-graph check and the activation budget so that all three see the same layers: objects
 * told from arrays, tfjs' key camel-casing, the layer list of a container, a layer's inbound
 * nodes.
 *
 * @module
 */

/** A JSON object (not an array, not null). */
export type JsonObject = Record<string, unknown>;

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** tfjs' `toCamelCase`, which it applies to every config key before reading it. */
export function camel(key: string): string {
  if (key.length <= 1 || !key.includes("_")) return key;
  return key.replace(/[_]+(\w|$)/g, (_, c: string) => c.toUpperCase());
}

/**
 * The layer list of a container config: Keras writes `config.layers`, very old Keras an array.
 * Undefined for a layer that holds none.
 */
export function containerLayers(container: JsonObject): unknown[] | undefined {
  const config = container.config;
  if (Array.isArray(config)) return config;
  if (isJsonObject(config) && Array.isArray(config.layers)) return config.layers;
  return undefined;
}

/** {@link containerLayers}, or none. */
export function layersOf(container: JsonObject): unknown[] {
  return containerLayers(container) ?? [];
}

/** What tfjs reads as `layerData.inboundNodes`: the last key that camel-cases to it. */
export function inboundNodes(layer: JsonObject): unknown {
  let out: unknown;
  for (const k of Object.keys(layer)) if (camel(k) === "inboundNodes") out = layer[k];
  return out;
}

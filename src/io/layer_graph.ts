/**
 * Checks that tfjs can build a topology's layers without hanging or leaking: their names, and a
 * Functional model's layer graph.
 *
 * Names: tfjs names each weight variable `<layer name>/<weight>` and throws on a name outside
 * `[A-Za-z0-9][-A-Za-z0-9._/]*` only after the initial value tensor exists, which then leaks
 * (found by fuzzing); such names are refused here first.
 *
 * tfjs builds a Functional model (`Container.fromConfig`) by re-queueing every inbound node whose
 * source layer or source node does not exist yet, in a `while` loop that only ends when the queue
 * is empty. A node that names a layer the model does not have, a node index that is never created,
 * a cycle, or an entry that is not a `[layer, node, tensor, kwargs]` array (its `[0]` is then
 * `undefined`) keeps the queue non-empty forever: a synchronous infinite loop that wedges the
 * whole process (found by fuzzing). This replays tfjs' queue on the JSON alone, with the same
 * lookups, and refuses the topology when a full pass makes no progress.
 */
import { LimitExceededError, MalformedInputError } from "../errors.ts";
import { CONTAINER_LAYERS } from "./supported_layers.ts";
import { inboundNodes, isJsonObject, type JsonObject, layersOf } from "./keras_config.ts";
import { MAX_JSON_DEPTH, showJson as short } from "./json_guard.ts";

/** Most inbound nodes in one model, nested models included (each layer call is one node). */
export const MAX_GRAPH_NODES = 10_000;

const FUNCTIONAL = new Set(["Model", "Functional"]);

/** tfjs-layers' `isValidTensorName` pattern (common.ts). */
const TENSOR_NAME = /^[A-Za-z0-9][-A-Za-z0-9._/]*$/;

/**
 * Throws {@link MalformedInputError} (400) when the Functional graph in `container`, or in any
 * model nested in it, would make tfjs loop forever, and {@link LimitExceededError} (413) past
 * {@link MAX_GRAPH_NODES} nodes. Layers whose configs tfjs refuses on its own (it throws, which
 * the loader turns into a 422) are left to tfjs.
 */
export function checkLayerGraph(container: JsonObject, where = "modelTopology"): void {
  const budget = { nodes: 0 };
  visit(container, where, budget, 0);
}

function visit(container: JsonObject, where: string, budget: { nodes: number }, depth: number) {
  if (depth > MAX_JSON_DEPTH) return;
  const layers = layersOf(container);
  if (typeof container.class_name === "string" && FUNCTIONAL.has(container.class_name)) {
    replay(layers, where, budget);
  }
  layers.forEach((l, i) => {
    if (!isJsonObject(l)) return;
    const name = isJsonObject(l.config) ? l.config.name : undefined;
    // A falsy name gets a generated one; any other non-string is stringified by tfjs.
    if (name && (typeof name !== "string" || !TENSOR_NAME.test(name))) {
      throw new MalformedInputError(
        `${where}.layers[${i}] is named ${short(name)}; layer names must match ` +
          "[A-Za-z0-9][-A-Za-z0-9._/]* (tfjs names weights after them)",
      );
    }
    if (typeof l.class_name === "string" && CONTAINER_LAYERS.has(l.class_name)) {
      visit(l, `${where}.layers[${i}]`, budget, depth + 1);
    }
  });
}

/** tfjs' node queue, replayed: names and indices are looked up exactly as tfjs does. */
function replay(layers: unknown[], where: string, budget: { nodes: number }): void {
  // `createdLayers[layerData.name]` in tfjs: the last layer listed under a name wins.
  const created = new Map<string, number>();
  const queueKey: string[] = [];
  const nodeCount: number[] = [];
  const queue = new Map<string, unknown[][]>();
  const enqueue = (key: string, node: unknown[]) => {
    const q = queue.get(key);
    if (q) q.push(node);
    else queue.set(key, [node]);
  };
  layers.forEach((l, i) => {
    if (!isJsonObject(l)) return;
    const config = isJsonObject(l.config) ? l.config : {};
    // Keras always writes string names; tfjs camel-cases any other kind, so its lookups would no
    // longer match what is replayed here.
    if (
      typeof l.name !== "string" || (config.name !== undefined && typeof config.name !== "string")
    ) {
      throw new MalformedInputError(
        `${where}.layers[${i}] of a Functional model needs a string 'name' (and config.name, ` +
          `when present), got ${short(l.name)}`,
      );
    }
    created.set(l.name, i);
    // tfjs keys the queue by the built layer's name: config.name, or a fresh unique name when
    // it is falsy.
    queueKey[i] = config.name ? String(config.name) : `\u0000unnamed ${i}`;
    // Input layers and nested models start with one node (made by their constructors).
    nodeCount[i] = l.class_name === "InputLayer" ||
        (typeof l.class_name === "string" && CONTAINER_LAYERS.has(l.class_name) &&
          layersOf(l).length > 0)
      ? 1
      : 0;
    const inbound = inboundNodes(l);
    if (!Array.isArray(inbound)) return; // tfjs throws on its own
    budget.nodes += inbound.length;
    if (budget.nodes > MAX_GRAPH_NODES) {
      throw new LimitExceededError(
        `the model's layers are called more than ${MAX_GRAPH_NODES} times (inbound nodes); ` +
          `at most ${MAX_GRAPH_NODES} are allowed`,
        { maxGraphNodes: MAX_GRAPH_NODES },
      );
    }
    for (const node of inbound) if (Array.isArray(node)) enqueue(queueKey[i], node);
  });

  while (queue.size > 0) {
    let progress = false;
    let stuck: { at: string; input: unknown } | undefined;
    for (let i = 0; i < layers.length; i++) {
      const l = layers[i];
      if (!isJsonObject(l)) continue;
      const own = created.get(String(l.name));
      if (own === undefined) continue;
      const key = queueKey[own];
      const pending = queue.get(key);
      if (pending === undefined) continue;
      queue.delete(key);
      for (const node of pending) {
        const blocked = blockedInput(node, created, nodeCount);
        if (blocked === undefined) {
          progress = true;
          // Applying the layer adds one node to it; an empty node applies nothing.
          if (node.length > 0) nodeCount[own]++;
        } else {
          enqueue(key, node);
          stuck ??= { at: `${where}.layers[${i}] (${short(l.name)})`, input: blocked };
        }
      }
    }
    if (!progress && stuck !== undefined) {
      throw new MalformedInputError(
        `${stuck.at} has an inbound node input ${short(stuck.input)} that refers to a layer ` +
          "or node the model never creates (an unknown layer name, a node index past that " +
          "layer's calls, a cycle, or an entry that is not [layer_name, node_index, " +
          "tensor_index, kwargs]); tfjs would wait for it forever",
      );
    }
  }
}

/** The first input of `node` that tfjs would re-queue on, or undefined if it goes through. */
function blockedInput(
  node: unknown[],
  created: Map<string, number>,
  nodeCount: number[],
): unknown {
  for (const input of node) {
    // tfjs reads input[0], input[1]; a null entry throws in tfjs (no loop), so it goes through.
    if (input === null || input === undefined) return undefined;
    const ref = input as Record<number, unknown>;
    const source = created.get(String(ref[0]));
    if (source === undefined) return input;
    // The same comparison as tfjs (`inboundNodes.length <= index`), coercions included.
    if (nodeCount[source] <= (ref[1] as number)) return input;
  }
  return undefined;
}

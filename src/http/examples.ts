/**
 * One working curl example per endpoint, run from the repository root against the small fixture
 * in `tests/fixtures/tiny_cnn/` (10×10 grey images, four classes), writing files under `out/`. They go into the OpenAPI
 * document (`x-codeSamples`) and the `/docs` page; `tests/readme/docs_examples_test.ts` runs every one
 * of them against a live service, so they cannot rot.
 */

const F = "tests/fixtures/tiny_cnn";
const MODEL = `-F model=@${F}/model.json -F weights=@${F}/weights.bin`;
const DATA = `-F images=@${F}/x.npy -F labels=@${F}/y.npy`;

/** Shell lines joined with a backslash-newline, continuation lines indented. */
const cmd = (...lines: string[]) => lines.join(" \\\n  ");

/** `"POST /v1/detect"`: the key of an operation's example. */
export function exampleKey(method: string, path: string): string {
  return `${method.toUpperCase()} ${path}`;
}

const PGD = `-F 'params={"attack":"pgd","eps":0.1,"steps":10}'`;

export const EXAMPLES: Record<string, string> = {
  "GET /healthz": "curl -sS localhost:8000/healthz",
  "GET /readyz": "curl -sS localhost:8000/readyz",
  "GET /metrics": "curl -sS localhost:8000/metrics",
  "GET /openapi.json": "curl -sS localhost:8000/openapi.json -o out/openapi.json --create-dirs",
  "GET /docs": "curl -sS localhost:8000/docs -o out/docs.html --create-dirs",
  "POST /v1/predict": cmd(
    `curl -sS ${MODEL}`,
    `-F images=@${F}/x.npy -F 'params={"top_k":2}' localhost:8000/v1/predict`,
  ),
  "POST /v1/attacks": [
    "# the report alone",
    cmd(`curl -sS ${MODEL}`, DATA, `${PGD} 'localhost:8000/v1/attacks?format=json'`),
    "# the adversarial images alone, as a .npy",
    cmd(
      `curl -sS ${MODEL}`,
      DATA,
      `${PGD} -H 'Accept: application/x-npy'`,
      "localhost:8000/v1/attacks -o out/adversarial.npy --create-dirs",
    ),
  ].join("\n"),
  "POST /v1/detect": cmd(
    `curl -sS ${MODEL}`,
    DATA,
    `-F 'params={"method":"spectral"}' localhost:8000/v1/detect`,
  ),
  "POST /v1/evaluate": cmd(
    `curl -sS ${MODEL}`,
    DATA,
    `-F 'params={"attack":{"eps":0.1,"steps":5}}' localhost:8000/v1/evaluate`,
  ),
  "GET /v1/purify/schedule": "curl -sS 'localhost:8000/v1/purify/schedule?preset=published'",
  "POST /v1/purify/rounds": [
    "# round 1: save the multipart reply, then write its parts to out/round1/",
    cmd(
      `curl -sS ${MODEL}`,
      DATA,
      `-F 'params={"seed":1,"max_steps":5}'`,
      "localhost:8000/v1/purify/rounds -o out/round1.multipart --create-dirs",
    ),
    "deno task unpack out/round1.multipart out/round1",
    "# round 2: what round 1 returned, plus its state (here its report alone)",
    cmd(
      "curl -sS -F model=@out/round1/model.json -F weights=@out/round1/weights.bin",
      "-F state=@out/round1/state.json",
      DATA,
      `-F 'params={"max_steps":5}' 'localhost:8000/v1/purify/rounds?part=report'`,
    ),
  ].join("\n"),
};

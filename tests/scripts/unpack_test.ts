import assert from "node:assert/strict";
import { blobOf, fixtureBytes, testApp } from "../_helpers.ts";
import { readReply, UnpackError } from "../../scripts/unpack.ts";

const ROOT = new URL("../../", import.meta.url);

/** Runs `deno task unpack ...args` from the repository root. */
async function unpackTask(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "unpack", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The round's form: the fixture's images and labels, and the bundle and state in `files`. */
function roundForm(files: Record<string, [Uint8Array, string]>, params: unknown): FormData {
  const f = new FormData();
  for (const [name, [bytes, filename]] of Object.entries(files)) {
    f.append(name, blobOf(bytes), filename);
  }
  f.append("images", blobOf(fixtureBytes("x.npy")), "x.npy");
  f.append("labels", blobOf(fixtureBytes("y.npy")), "y.npy");
  f.append("params", JSON.stringify(params));
  return f;
}

function multipart(parts: { name: string; filename?: string; body: string }[], end = true) {
  const b = "b0undary42";
  const text = parts.map((p) =>
    `--${b}\r\nContent-Disposition: form-data; name="${p.name}"` +
    (p.filename === undefined ? "" : `; filename="${p.filename}"`) + `\r\n\r\n${p.body}\r\n`
  ).join("") + (end ? `--${b}--\r\n` : "");
  return new TextEncoder().encode(text);
}

Deno.test("a saved round reply, unpacked by deno task unpack, is accepted as the next round", async () => {
  const app = await testApp();
  const params = { max_steps: 2, seed: 1 };
  const first = await app.request("/v1/purify/rounds", {
    method: "POST",
    body: roundForm({
      model: [fixtureBytes("model.json"), "model.json"],
      weights: [fixtureBytes("weights.bin"), "weights.bin"],
    }, params),
  });
  assert.equal(first.status, 200, await first.clone().text());
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${tmp}/reply`, new Uint8Array(await first.arrayBuffer()));
    const run = await unpackTask(`${tmp}/reply`, `${tmp}/r1`);
    assert.equal(run.code, 0, run.stderr);
    const names = [...Deno.readDirSync(`${tmp}/r1`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["model.json", "report.json", "state.json", "weights.bin"]);
    assert.match(
      run.stdout,
      new RegExp(
        `-F model=@${tmp}/r1/model.json -F weights=@${tmp}/r1/weights.bin ` +
          `-F state=@${tmp}/r1/state.json`,
      ),
    );
    const read = (f: string): [Uint8Array, string] => [Deno.readFileSync(`${tmp}/r1/${f}`), f];
    const second = await app.request("/v1/purify/rounds", {
      method: "POST",
      body: roundForm({
        model: read("model.json"),
        weights: read("weights.bin"),
        state: read("state.json"),
      }, params),
    });
    assert.equal(second.status, 200, await second.clone().text());
    const report = JSON.parse(await ((await second.formData()).get("report") as File).text());
    const before = JSON.parse(new TextDecoder().decode(read("report.json")[0]));
    assert.ok(report.progress >= before.progress, "the second round continues the first");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("unpack refuses path traversal, absolute paths, duplicates and malformed bodies", async () => {
  const refused = async (body: Uint8Array, pattern: RegExp) => {
    await assert.rejects(readReply(body), (e: Error) => {
      assert.ok(e instanceof UnpackError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  };
  await refused(multipart([{ name: "model", filename: "../model.json", body: "{}" }]), /path/);
  await refused(multipart([{ name: "model", filename: "/etc/passwd", body: "{}" }]), /path/);
  await refused(multipart([{ name: "state", filename: "..", body: "{}" }]), /not a file name/);
  await refused(
    multipart([
      { name: "weights", filename: "w.bin", body: "a" },
      { name: "weights", filename: "w.bin", body: "b" },
    ]),
    /two parts declare the filename 'w.bin'/,
  );
  await refused(multipart([{ name: "params", body: "{}" }]), /declares no filename/);
  await refused(multipart([{ name: "model", filename: "m.json", body: "{}" }], false), /truncated/);
  await refused(new TextEncoder().encode('{"error": {}}'), /not a saved multipart reply/);
});

Deno.test("deno task unpack exits with 2, a clear message and no file written for a bad reply", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeFile(
      `${tmp}/reply`,
      multipart([
        { name: "model", filename: "model.json", body: "{}" },
        { name: "weights", filename: "../../weights.bin", body: "x" },
      ]),
    );
    const run = await unpackTask(`${tmp}/reply`, `${tmp}/out`);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /filename "\.\.\/\.\.\/weights\.bin", which is a path/);
    assert.throws(() => Deno.statSync(`${tmp}/out`), Deno.errors.NotFound);
    const usage = await unpackTask(`${tmp}/reply`);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: deno task unpack REPLY DIR/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

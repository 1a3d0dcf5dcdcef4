/**
 * `deno task lab` from the command line with the VGG-BN flags: a combination the model cannot take
 * is refused with exit code 2 before the backend starts, and a small synthetic 32×32×3 run writes
 * a VGG-BN bundle and a lab.json that says so.
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("../../scripts/lab.ts", import.meta.url).pathname;

async function lab(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env=BACKEND", SCRIPT, ...args],
    env: { BACKEND: Deno.env.get("BACKEND") ?? "wasm" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("the lab CLI refuses --model vgg-bn on 28×28×1 Fashion-MNIST with exit code 2 and what to use", async () => {
  const r = await lab(["--model", "vgg-bn", "--out", "/nonexistent/never-written"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /model vgg-bn takes 3-channel images/);
  assert.match(r.stderr, /28×28×1\. Use lift "rgb32"/);
  assert.doesNotMatch(r.stdout, /backend:/, "refused before the backend starts");
  const bad = await lab(["--synthetic-channels", "2", "--dataset", "synthetic"]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /syntheticChannels/);
});

Deno.test("the lab CLI trains a small VGG-BN on synthetic 32×32×3 and writes its bundle", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await lab([
      ...["--model", "vgg-bn", "--vgg-width", "8", "--dataset", "synthetic"],
      ...["--synthetic-size", "32", "--synthetic-channels", "3", "--train", "300"],
      ...["--extra", "60", "--test", "120", "--epochs", "1", "--batch-size", "32", "--out", dir],
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /model: vgg-bn \{"width":8\}, 21374 parameters/);
    assert.match(r.stdout, /precise batch-norm statistics/);
    const rep = JSON.parse(await Deno.readTextFile(`${dir}/lab.json`));
    assert.equal(rep.settings.model, "vgg-bn");
    assert.deepEqual(rep.inputShape, [32, 32, 3]);
    assert.ok(rep.cleanAccuracy > 1 / 6, `clean accuracy ${rep.cleanAccuracy}`);
    const doc = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
    const classes = doc.modelTopology.config.layers.map((l: { class_name: string }) =>
      l.class_name
    );
    assert.equal(classes.filter((c: string) => c === "BatchNormalization").length, 6);
    assert.ok((await Deno.stat(`${dir}/weights.bin`)).size > 80_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

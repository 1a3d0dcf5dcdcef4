/**
 * `deno task unpack REPLY DIR`: writes each part of a saved multipart reply (what `curl -o REPLY`
 * wrote for `/v1/attacks` or `/v1/purify/rounds`) to `DIR/<the filename the part declares>`, so
 * the next round is
 * `curl -F model=@DIR/model.json -F weights=@DIR/weights.bin -F state=@DIR/state.json ...`.
 *
 * The boundary is read from the body's first line (`--BOUNDARY`), since a saved body has no
 * headers. Nothing is written unless the whole reply is sound: a body that is not multipart, a
 * truncated body, a part without a filename, a filename that is not a plain name (`../x`, `/etc/x`, `a/b`), or two
 * parts with the same filename are refused with a message and exit code 2.
 */

/** A reply that cannot be unpacked safely; the CLI prints its message and exits with 2. */
export class UnpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnpackError";
  }
}

/** One part as written: the form field it came from and where it went. */
export interface UnpackedPart {
  name: string;
  filename: string;
  path: string;
  bytes: number;
}

/** The boundary of a saved multipart body: its first line, less the leading `--`. */
export function boundaryOf(body: Uint8Array): string {
  const head = new TextDecoder().decode(body.subarray(0, 200));
  const line = head.split("\n", 1)[0].replace(/\r$/, "");
  if (!line.startsWith("--") || line.length < 3 || line.length > 72 || /\s/.test(line.slice(2))) {
    throw new UnpackError(
      "not a saved multipart reply: its first line should be '--BOUNDARY' " +
        "(save the reply with curl -o, without -i; a JSON answer needs no unpacking)",
    );
  }
  return line.slice(2);
}

/** Why `filename` may not be written under DIR, or `undefined` when it is a plain file name. */
function unsafeName(filename: string): string | undefined {
  if (filename === "") return "is empty";
  if (filename === "." || filename === "..") return "is not a file name";
  if (/[/\\]/.test(filename)) return "is a path, not a plain file name";
  if (/^[A-Za-z]:/.test(filename)) return "is a drive path";
  if ([...filename].some((ch) => ch.charCodeAt(0) < 32)) return "contains control characters";
  return undefined;
}

/** The parts of a saved reply, checked (names, uniqueness) but not written. */
export async function readReply(body: Uint8Array): Promise<{ name: string; file: File }[]> {
  const boundary = boundaryOf(body);
  const tail = new TextDecoder().decode(
    body.subarray(Math.max(0, body.length - boundary.length - 8)),
  );
  if (!tail.trimEnd().endsWith(`--${boundary}--`)) {
    throw new UnpackError(
      `truncated multipart reply: it does not end with its closing line '--${boundary}--' ` +
        "(was the download cut short?)",
    );
  }
  let form: FormData;
  try {
    form = await new Response(body as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
    }).formData();
  } catch (e) {
    throw new UnpackError(`malformed multipart reply: ${(e as Error).message}`);
  }
  const parts: { name: string; file: File }[] = [];
  const seen = new Set<string>();
  for (const [name, value] of form.entries()) {
    if (typeof value === "string") {
      throw new UnpackError(`part '${name}' declares no filename; cannot name its file`);
    }
    const why = unsafeName(value.name);
    if (why) {
      throw new UnpackError(
        `part '${name}' declares filename ${JSON.stringify(value.name)}, which ${why}; ` +
          "only plain file names are written under DIR",
      );
    }
    if (seen.has(value.name)) {
      throw new UnpackError(
        `two parts declare the filename '${value.name}'; refusing to overwrite`,
      );
    }
    seen.add(value.name);
    parts.push({ name, file: value });
  }
  if (parts.length === 0) throw new UnpackError("the reply has no parts");
  return parts;
}

/** Writes every part of the saved reply `body` to `dir` (created if needed). */
export async function unpackReply(body: Uint8Array, dir: string): Promise<UnpackedPart[]> {
  const parts = await readReply(body);
  await Deno.mkdir(dir, { recursive: true });
  const out: UnpackedPart[] = [];
  for (const { name, file } of parts) {
    const path = `${dir.replace(/\/+$/, "") || "."}/${file.name}`;
    const bytes = new Uint8Array(await file.arrayBuffer());
    await Deno.writeFile(path, bytes);
    out.push({ name, filename: file.name, path, bytes: bytes.length });
  }
  return out;
}

/** The `curl -F` arguments that send the unpacked parts back (every part but the report). */
export function nextFormArgs(parts: UnpackedPart[]): string {
  return parts.filter((p) => p.name !== "report").map((p) => `-F ${p.name}=@${p.path}`).join(" ");
}

async function main(args: string[]): Promise<number> {
  if (args.length !== 2 || args.some((a) => a === "-h" || a === "--help")) {
    console.error("usage: deno task unpack REPLY DIR   (REPLY: a body saved with curl -o)");
    return 2;
  }
  const [reply, dir] = args;
  let body: Uint8Array;
  try {
    body = await Deno.readFile(reply);
  } catch (e) {
    console.error(`unpack: cannot read ${reply}: ${(e as Error).message}`);
    return 2;
  }
  try {
    const parts = await unpackReply(body, dir);
    for (const p of parts) console.log(`${p.path}  (${p.name}, ${p.bytes} bytes)`);
    const next = nextFormArgs(parts);
    if (next) console.log(`send back with: ${next}`);
    return 0;
  } catch (e) {
    if (e instanceof UnpackError) {
      console.error(`unpack: ${reply}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

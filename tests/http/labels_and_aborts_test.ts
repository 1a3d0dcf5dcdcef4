/** Metrics labels stay bounded, and an upload cut off mid-body is a 499, not a 500. */
import assert from "node:assert/strict";
import { testApp } from "../_helpers.ts";

Deno.test("unknown methods and unmatched paths are one label value each in /metrics", async () => {
  const app = await testApp();
  for (let i = 0; i < 20; i++) {
    await app.request(`/no/such/route/${i}`);
    await app.request(`/v1/predict?x=${i}`, { method: `BREW${i}` });
  }
  const text = await (await app.request("/metrics")).text();
  const series = text.split("\n").filter((l) => l.startsWith("purifier_requests_total{"));
  assert.ok(series.some((l) => l.includes('method="GET",route="unmatched",status="404"')));
  assert.ok(series.some((l) => l.includes('method="other"')));
  assert.ok(!/BREW|no\/such/.test(text), "no request-specific label value");
  assert.ok(series.length <= 4, `few series, got ${series.length}:\n${series.join("\n")}`);
});

Deno.test("a client that goes away while its upload is read is counted as 499, not 500", async () => {
  const app = await testApp({ LOG_REQUESTS: "false" });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  try {
    const { port } = server.addr as Deno.NetAddr;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const head = "POST /v1/predict HTTP/1.1\r\nHost: x\r\n" +
      "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n" +
      '--b\r\nContent-Disposition: form-data; name="model"; filename="model.json"\r\n\r\n{';
    await conn.write(new TextEncoder().encode(head));
    await new Promise((r) => setTimeout(r, 200));
    conn.close();
    let text = "";
    for (let i = 0; i < 50 && !text.includes('status="499"'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      text = await (await app.request("/metrics")).text();
    }
    assert.match(
      text,
      /purifier_requests_total\{method="POST",route="\/v1\/predict",status="499"\} 1/,
    );
    assert.doesNotMatch(text, /status="500"/);
  } finally {
    await server.shutdown();
  }
});

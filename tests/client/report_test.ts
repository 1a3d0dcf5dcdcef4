import assert from "node:assert/strict";
import { decode } from "fast-png";
import { detectionReport } from "../../client/detection.ts";
import { dataTable, escapeHtml, keyValueTable, pct } from "../../client/html.ts";
import { base64, imageDataUri, imagePixels, imagePng } from "../../client/image_png.ts";
import { describeRobustAttack, fmtEps, roundFigures } from "../../client/evaluate.ts";
import { flagScore, type ReportData } from "../../client/report_data.ts";
import { summaryTable } from "../../client/summary_table.ts";
import { chartSvg, reportHtml, rocSvg } from "../../client/report_html.ts";
import { pickSamples, subsetNpy } from "../../client/samples.ts";
import { lineChartSvg } from "../../client/svg_chart.ts";
import { encodeNpy, parseNpy } from "../../src/io/npy.ts";

const EVIL = `<script>alert("x")</script>' onerror="y" &amp;`;

Deno.test("escapeHtml() leaves no markup, quote or raw ampersand from its input", () => {
  const s = escapeHtml(EVIL);
  assert.ok(!/[<>"']/.test(s), s);
  assert.equal(s.replace(/&(amp|lt|gt|quot|#39);/g, ""), s.replace(/&[a-z#0-9]+;/g, ""));
  assert.equal(escapeHtml(null), "");
  assert.equal(escapeHtml(3), "3");
  assert.equal(escapeHtml("a&b"), "a&amp;b");
});

Deno.test("tables escape keys and values, and pct() shows missing figures as a dash", () => {
  const html = keyValueTable({ [EVIL]: EVIL, obj: { k: EVIL } }) + dataTable([EVIL], [[EVIL]]);
  assert.ok(!html.includes("<script"));
  assert.ok(!html.includes(`"y"`));
  assert.equal(pct(0.1234), "12.3%");
  assert.equal(pct(NaN), "—");
  assert.equal(pct(undefined), "—");
});

Deno.test("lineChartSvg() draws finite points, breaks lines at NaN and says when there is no data", () => {
  const svg = lineChartSvg([
    {
      label: "a",
      color: "#123456",
      points: [{ x: 0, y: 0.5 }, { x: 1, y: NaN }, { x: 2, y: 0.7 }, { x: 3, y: 0.8 }],
    },
    { label: "empty", color: "red", points: [] },
  ], { title: "t", xLabel: "x" });
  assert.ok(!svg.includes("NaN"), "no NaN coordinates");
  const path = svg.match(/<path class="series" d="([^"]+)"/)![1];
  assert.equal((path.match(/M/g) ?? []).length, 2, "the NaN point splits the line in two");
  assert.ok(svg.includes("empty (no data)"));
  assert.ok(svg.includes('data-series="1"'));
  assert.ok(!svg.includes("no-data"));

  const none = lineChartSvg([{ label: "b", color: "red", points: [{ x: NaN, y: 1 }] }], {
    title: "t",
    xLabel: "x",
  });
  assert.ok(none.includes('class="no-data"'));
  assert.ok(!none.includes("NaN") && !none.includes("Infinity"));
  assert.ok(none.startsWith("<svg") && none.endsWith("</svg>"));
});

Deno.test("lineChartSvg() copes with a single point, infinities and hostile labels and colours", () => {
  const svg = lineChartSvg([
    { label: EVIL, color: `red" onload="x`, points: [{ x: 5, y: Infinity }, { x: 5, y: 0.3 }] },
  ], { title: EVIL, xLabel: EVIL, id: EVIL });
  assert.ok(!svg.includes("<script") && !svg.includes("onload=") && !svg.includes("Infinity"));
  assert.ok(svg.includes("<circle"), "the single finite point is drawn");
  assert.ok(!svg.includes("NaN"));
});

Deno.test("chartSvg() and rocSvg() render empty input as an empty but valid chart", () => {
  for (const svg of [chartSvg([]), rocSvg([]), chartSvg([{ round: 0 }])]) {
    assert.ok(svg.includes('class="no-data"'));
    assert.ok(!svg.includes("NaN"));
  }
  const roc = rocSvg([{ fpr: 0, tpr: 0 }, { fpr: 0.1, tpr: 0.9 }, { fpr: 1, tpr: 1 }], 0.95);
  assert.ok(roc.includes("AUROC 0.950"));
  assert.ok(roc.includes("stroke-dasharray"), "chance diagonal");
});

Deno.test("imagePixels() scales floats, clamps, maps NaN to 0 and keeps integer images", () => {
  const f = new Float32Array([0, 0.5, 1, 2, -1, NaN]);
  assert.deepEqual(
    Array.from(imagePixels({ data: f, shape: [1, 2, 3, 1] }, 0).data),
    [0, 128, 255, 255, 0, 0],
  );
  const u = new Uint8Array([1, 2, 3, 4, 5, 6]);
  const px = imagePixels({ data: u, shape: [2, 1, 1, 3] }, 1);
  assert.deepEqual([px.channels, ...px.data], [3, 4, 5, 6]);
  assert.throws(() => imagePixels({ data: u, shape: [2, 1, 1, 3] }, 2), RangeError);
});

Deno.test("imagePng() round-trips through a PNG decoder and imageDataUri() is a PNG data URI", () => {
  const data = Uint8Array.from({ length: 2 * 4 * 3 }, (_, i) => i * 10);
  const b = { data, shape: [2, 4, 3, 1] as [number, number, number, number] };
  const png = decode(imagePng(b, 1));
  assert.equal(png.width, 3);
  assert.equal(png.height, 4);
  assert.equal(png.channels, 1);
  assert.deepEqual(Array.from(png.data), Array.from(data.subarray(12, 24)));
  const uri = imageDataUri(b, 0);
  assert.ok(uri.startsWith("data:image/png;base64,"));
  assert.equal(base64(new Uint8Array([104, 105])), "aGk=");
  // Big enough to need several chunks.
  const big = new Uint8Array(100_000).fill(65);
  assert.equal(atob(base64(big)).length, big.length);
});

Deno.test("pickSamples() takes non-target images one class at a time with their triggered twins", () => {
  const labels = [0, 1, 2, 1, 2, 0, 1];
  const picks = pickSamples(labels, 4, 0, 5);
  assert.deepEqual(picks.map((p) => p.index), [1, 2, 3, 4]);
  // Non-target images in order: 1,2,3,4,6 → bd 0..4.
  assert.deepEqual(picks.map((p) => p.bdIndex), [0, 1, 2, 3]);
  assert.deepEqual(pickSamples(labels, 3, undefined, 0).map((p) => p.bdIndex), [
    undefined,
    undefined,
    undefined,
  ]);
  assert.equal(pickSamples(labels, 100, 0, 0).length, 5);
});

Deno.test("subsetNpy() keeps the dtype and the chosen images", () => {
  const a = parseNpy(encodeNpy({
    dtype: "float32",
    shape: [3, 1, 2, 1],
    data: new Float32Array([1, 2, 3, 4, 5, 6]),
  }));
  const s = parseNpy(subsetNpy(a, [2, 0]));
  assert.equal(s.dtype, "float32");
  assert.deepEqual(s.shape, [2, 1, 2, 1]);
  assert.deepEqual(Array.from(s.data as Float32Array), [5, 6, 1, 2]);
});

Deno.test("detectionReport() lists flagged images highest score first with ground truth", () => {
  const d = detectionReport(
    {
      method: "pud",
      scores: [0.1, 0.9, 0.5, 0.95],
      flagged_indices: [1, 2, 3],
      metrics: { precision: 2 / 3, auroc: 0.75, roc: [{ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }] },
    },
    { method: "pud" },
    1.23,
    [0, 1, 0, 0],
    [0, 1, 0, 1],
  );
  assert.deepEqual(d.flagged_images.map((f) => f.index), [3, 1, 2]);
  assert.deepEqual(d.flagged_images.map((f) => f.poisoned), [true, true, false]);
  assert.equal(d.flagged, 3);
  assert.equal(d.metrics?.auroc, 0.75);
  assert.equal(d.metrics?.recall, undefined);
  assert.equal(d.roc.length, 2);
});

Deno.test("flagScore() gives precision and recall, null where undefined", () => {
  assert.deepEqual(flagScore([0, 1], [1, 0, 1]), { flagged: 2, precision: 0.5, recall: 0.5 });
  assert.deepEqual(flagScore([], [0, 0]), { flagged: 0, precision: null, recall: null });
  assert.deepEqual(flagScore([1]), { flagged: 1, precision: null, recall: null });
});

function sampleReport(): ReportData {
  return {
    title: `report ${EVIL}`,
    created: "2026-01-01T00:00:00.000Z",
    server: "http://127.0.0.1:1",
    backend: "wasm",
    inputs: { model: EVIL },
    settings: { purify: { schedule: EVIL } },
    summary: {
      rounds: 2,
      done: true,
      before: { round: 0, clean_accuracy: 0.9, attack_success_rate: 0.99 },
      after: { round: 2, clean_accuracy: 0.88, attack_success_rate: 0.02 },
      purification_flags: { flagged: 3, precision: 1, recall: 0.5 },
    },
    points: [
      { round: 0, stage: "infected", clean_accuracy: 0.9, attack_success_rate: 0.99 },
      { round: 1, stage: EVIL, clean_accuracy: 0.85, attack_success_rate: NaN },
      { round: 2, stage: "done", clean_accuracy: 0.88, attack_success_rate: 0.02 },
    ],
    detection: {
      method: "pud",
      params: {},
      n: 4,
      flagged: 1,
      suspected_target: 0,
      roc: [{ fpr: 0, tpr: 0 }, { fpr: 0, tpr: 1 }, { fpr: 1, tpr: 1 }],
      metrics: { precision: 1, recall: 1, auroc: 1 },
      flagged_images: [{ index: 2, score: 0.7, label: 0, poisoned: true }],
      seconds: 1,
    },
    samples: {
      attack: { attack: "pgd" },
      items: [{
        index: 5,
        label: 1,
        clean: { before: 1, after: 1 },
        triggered: { bd_index: 3, target: 0, before: 0, after: 1 },
        adversarial: { before: 2, after: 1 },
      }],
      seconds: 1,
    },
    class_names: [EVIL, "trouser"],
    timings: { rounds: 12.3, total: 20 },
    notes: [EVIL],
    last: {},
  };
}

Deno.test("reportHtml() escapes every outside value and embeds only data: images", () => {
  const uri = imageDataUri({ data: new Uint8Array(4), shape: [1, 2, 2, 1] }, 0);
  const html = reportHtml(sampleReport(), {
    flagged: new Map([[2, uri]]),
    samples: {
      clean: [uri],
      triggered: [`https://evil.example/x.png`],
      adversarialBefore: [uri],
      adversarialAfter: [`javascript:alert(1)`],
    },
  });
  assert.ok(!html.includes("<script"), "no script element");
  assert.ok(!html.includes(`"y"`), "no attribute breaks out");
  assert.ok(!html.includes("evil.example") && !html.includes("javascript:"));
  assert.ok(!/\b(src|href)="(?!data:image\/png;base64,)/.test(html), "only data: URIs");
  assert.ok(html.includes("Content-Security-Policy"));
  for (const id of ["chart-rounds", "rounds", "chart-roc", "detection", "flagged", "samples"]) {
    assert.ok(html.includes(`id="${id}"`), id);
  }
  assert.equal((html.match(/<img /g) ?? []).length, 3);
  assert.ok(!html.includes("NaN"));
});

Deno.test("reportHtml() renders a run without detection, samples or evaluations", () => {
  const d = sampleReport();
  const html = reportHtml({
    ...d,
    detection: undefined,
    samples: undefined,
    points: [{ round: 1, stage: 0 }],
    summary: { rounds: 1, done: false, purification_flags: { flagged: 0 } },
  });
  assert.ok(html.includes("No detection step was run."));
  assert.ok(html.includes("No sample images"));
  assert.ok(html.includes('class="no-data"'));
  assert.ok(!html.includes("NaN") && !html.includes("undefined"));
});

Deno.test("fmtEps() writes k/255 budgets as fractions and others as numbers", () => {
  assert.equal(fmtEps(8 / 255), "8/255");
  assert.equal(fmtEps(2 / 255), "2/255");
  assert.equal(fmtEps(0.05), "0.05");
  assert.equal(fmtEps(0.1234567), "0.1235");
  assert.equal(fmtEps(NaN), "—");
  assert.equal(fmtEps("8/255"), "—");
  assert.equal(
    describeRobustAttack({ name: "pgd", norm: "linf", eps: 8 / 255, steps: 20, restarts: 1 }),
    "PGD-20 L-inf 8/255",
  );
  assert.equal(
    describeRobustAttack({ name: "autoattack", norm: "linf", eps: 8 / 255, version: "fast" }),
    "autoattack fast L-inf 8/255",
  );
  assert.equal(describeRobustAttack(EVIL), undefined);
});

/** An /v1/evaluate reply with the ensemble, as the server sends it. */
const ENSEMBLE_REPLY = {
  clean_accuracy: 0.9,
  attack_success_rate: 0.02,
  robust_accuracy: 0.31,
  worst_case_robust_accuracy: 0.31,
  gradient_masking_suspected: true,
  robust: {
    attack: { name: "autoattack", norm: "linf", eps: 8 / 255, version: "standard" },
    members: [
      { member: "apgd-ce", robust_accuracy: 0.4 },
      { member: "apgd-t", robust_accuracy: 0.35 },
      { member: "square", robust_accuracy: 0.31 },
    ],
  },
};

Deno.test("roundFigures() keeps per-member robust accuracy, the worst case and the masking flag", () => {
  const p = roundFigures(ENSEMBLE_REPLY);
  assert.equal(p.robust_accuracy, 0.31);
  assert.equal(p.worst_case_robust_accuracy, 0.31);
  assert.equal(p.gradient_masking_suspected, true);
  assert.equal(p.robust_attack, "autoattack standard L-inf 8/255");
  assert.deepEqual(p.robust_members!.map((m) => m.member), ["apgd-ce", "apgd-t", "square"]);
  const plain = roundFigures({ clean_accuracy: 0.9 });
  assert.deepEqual(plain, {
    clean_accuracy: 0.9,
    attack_success_rate: undefined,
    robust_accuracy: undefined,
  });
});

Deno.test("reportHtml() shows robust accuracy per attack, the worst case and a masking warning", () => {
  const d = sampleReport();
  const before = { round: 0, ...roundFigures(ENSEMBLE_REPLY) };
  const after = {
    round: 2,
    ...roundFigures({
      ...ENSEMBLE_REPLY,
      robust_accuracy: 0.5,
      worst_case_robust_accuracy: 0.5,
      gradient_masking_suspected: false,
    }),
  };
  const html = reportHtml({
    ...d,
    summary: { ...d.summary, before, after },
    points: [before, after],
  });
  for (const m of ["apgd-ce", "apgd-t", "square"]) {
    assert.ok(html.includes(`robust accuracy after ${m}`), m);
  }
  assert.ok(html.includes("worst-case robust accuracy (purification is judged on this)"));
  assert.ok(html.includes("SUSPECTED"));
  assert.ok(html.includes("autoattack standard L-inf 8/255"));
  assert.ok(html.includes("31.0%") && html.includes("50.0%"));
  // The flagged thumbnails name the label as given, which may be the poisoned one.
  assert.ok(html.includes("given label"));
  assert.ok(!html.includes("NaN") && !html.includes("undefined"));
});

Deno.test("summaryTable() adds a worst-case robust column only when a run measured it", () => {
  const row = { rounds: 3, done: true, seconds: 5, where: "out" };
  assert.ok(!summaryTable([row])[0].includes("worst-case"));
  const lines = summaryTable([{ ...row, rob: [0.6, 0.7], worst: [0.3, 0.45] }]);
  assert.ok(lines[0].includes("worst-case robust"));
  assert.ok(lines[1].includes("30.0% → 45.0%"));
});

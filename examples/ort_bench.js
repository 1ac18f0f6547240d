// ort_bench.js - time an ONNX file in ONNX Runtime (onnxruntime-node from
// tests/onnx, CPU execution provider, all graph optimisations), the way
// `sardfq bench` times the library: N(0, 1) images, each timed call after
// an untimed one (idle intra-op threads spin after a call and would take a
// core from the next), median over the timed calls.
//
//   node examples/ort_bench.js MODEL.onnx C H W [BATCH 8] [REPEAT 5] [THREADS 2]
//
// Prints one line: ort_ms_per_img=<median ms per image> batch=<B> repeat=<R>
'use strict';
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tests', 'onnx', 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, C, H, W, B = '8', R = '5', T = '2'] = process.argv.slice(2);
  const b = +B, n = b * C * H * W;
  const x = new Float32Array(n);
  let s = 42;
  for (let i = 0; i < n; i += 2) { // Box-Muller over a small LCG (fixed images)
    s = (s * 1103515245 + 12345) % 2147483648;
    const u = (s + 0.5) / 2147483648;
    s = (s * 1103515245 + 12345) % 2147483648;
    const v = (s + 0.5) / 2147483648;
    const r = Math.sqrt(-2 * Math.log(u));
    x[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) x[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  const sess = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: +T, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
  const feeds = {input: new ort.Tensor('float32', x, [b, +C, +H, +W])};
  const t = [];
  for (let k = 0; k < +R; k++) {
    await sess.run(feeds);
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6 / b);
  }
  t.sort((p, q) => p - q);
  console.log(`ort_ms_per_img=${t[Math.floor(t.length / 2)].toFixed(3)} batch=${b} repeat=${R}`);
}

main().catch((e) => { console.error(`ort_bench.js: ${e.message}`); process.exit(1); });

// compare.js - run an exported ONNX file in ONNX Runtime (onnxruntime-node,
// CPU execution provider, all graph optimisations) and compare its logits
// with a reference. Two forms:
//
//   node compare.js MODEL.onnx IMAGES.f32 LOGITS.f32 LABELS.i32 C H W K TOL MIN_WITHIN MIN_AGREE [MAX_DTOP1]
//     against the library's logits on the images dump_logits wrote; prints
//       max_rel=<max over images of max |ort - ours| / max |ours|>
//       p50= p90= p99=<quantiles of that per-image error>
//       within=<% of images whose error is <= TOL> agree=<top-1 identical, %>
//       ort_top1=<%> ours_top1=<%> n=<images>
//     and exits 1 when within < MIN_WITHIN or agree < MIN_AGREE (percent), or
//     when the two top-1 accuracies differ by more than MAX_DTOP1 points;
//
//   node compare.js --golden MODEL.onnx GOLDEN.safetensors TOL
//     against a PyTorch golden of tests/reference (its "images" and
//     "logits", float32); prints max_rel=<max |ort - golden| / max |golden|>
//     and exits 1 when it is above TOL.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function floats(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function argmax(a, off, k) {
  let j = 0;
  for (let i = 1; i < k; i++) if (a[off + i] > a[off + j]) j = i;
  return j;
}

// The float32 tensors of a safetensors file: {name: {shape, data}}.
function safetensors(file) {
  const b = fs.readFileSync(file);
  const hlen = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + hlen).toString('utf8'));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.dtype !== 'F32') continue;
    const [a, e] = t.data_offsets;
    const bytes = Uint8Array.prototype.slice.call(b, 8 + hlen + a, 8 + hlen + e);
    out[name] = {shape: t.shape, data: new Float32Array(bytes.buffer)};
  }
  return out;
}

function session(model) {
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
}

async function golden(model, file, tol) {
  const g = safetensors(file);
  const sess = await session(model);
  const y = (await sess.run({input: new ort.Tensor('float32', g.images.data, g.images.shape)})).logits.data;
  const ref = g.logits.data;
  let d = 0, m = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(y[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  console.log(`max_rel=${(d / m).toExponential(3)} n=${g.images.shape[0]}`);
  process.exit(y.length === ref.length && d / m <= +tol ? 0 : 1);
}

async function main() {
  if (process.argv[2] === '--golden') return golden(...process.argv.slice(3));
  const [model, imgf, logf, labf, C, H, W, K, tol, minWithin, minAgree, maxDTop1 = '100'] = process.argv.slice(2);
  const c = +C, h = +H, w = +W, k = +K, px = c * h * w;
  const images = floats(imgf), ours = floats(logf);
  const lb = fs.readFileSync(labf);
  const labels = new Int32Array(lb.buffer, lb.byteOffset, lb.length / 4);
  const n = labels.length;
  const sess = await session(model);
  let maxRel = 0, within = 0, agree = 0, okOrt = 0, okOurs = 0;
  const rel = new Float64Array(n);
  const B = 250;
  for (let s = 0; s < n; s += B) {
    const b = Math.min(B, n - s);
    const x = new ort.Tensor('float32', images.subarray(s * px, (s + b) * px), [b, c, h, w]);
    const y = (await sess.run({input: x})).logits.data;
    for (let i = 0; i < b; i++) {
      let d = 0, m = 0;
      for (let j = 0; j < k; j++) {
        d = Math.max(d, Math.abs(y[i * k + j] - ours[(s + i) * k + j]));
        m = Math.max(m, Math.abs(ours[(s + i) * k + j]));
      }
      maxRel = Math.max(maxRel, d / m);
      within += d / m <= +tol;
      rel[s + i] = d / m;
      const a = argmax(y, i * k, k), o = argmax(ours, (s + i) * k, k);
      agree += a === o;
      okOrt += a === labels[s + i];
      okOurs += o === labels[s + i];
    }
  }
  const pct = (v) => (100 * v / n).toFixed(2);
  rel.sort();
  const q = (p) => rel[Math.min(n - 1, Math.floor(p * n))].toExponential(2);
  console.log(`max_rel=${maxRel.toExponential(3)} p50=${q(0.5)} p90=${q(0.9)} p99=${q(0.99)} ` +
              `within=${pct(within)} agree=${pct(agree)} ` +
              `ort_top1=${pct(okOrt)} ` +
              `ours_top1=${pct(okOurs)} n=${n}`);
  const dtop1 = 100 * Math.abs(okOrt - okOurs) / n;
  process.exit(100 * within / n >= +minWithin && 100 * agree / n >= +minAgree && dtop1 <= +maxDTop1 ? 0 : 1);
}

main().catch((e) => { console.error(`compare.js: ${e.message}`); process.exit(1); });

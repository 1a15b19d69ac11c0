// ort_compare.js — runs an exported ONNX file in ONNX Runtime (npm
// onnxruntime-node, CPU execution provider) on the images digits predicted
// (tests/onnx_ref.c predict) and compares:
//   node ort_compare.js N TOL MODEL.onnx DIR [MODEL.onnx DIR ...]
// DIR holds pixels.f32 (N,1,28,28), probs.f32 and logits.f32 (N,10).
// Prints one line per model: the largest |difference| of the probabilities
// and of the logits, and how many predictions (argmax) differ. Exit 1 if a
// probability differs by more than TOL or any prediction differs.
// Left out: timing (bench/), other execution providers.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function argmax(a, i) {
  let best = 0;
  for (let k = 1; k < 10; k++) if (a[i * 10 + k] > a[i * 10 + best]) best = k;
  return best;
}

async function compare(model, dir, n, tol) {
  const pixels = readF32(path.join(dir, 'pixels.f32'));
  const wantP = readF32(path.join(dir, 'probs.f32')), wantZ = readF32(path.join(dir, 'logits.f32'));
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 2 });
  const input = new ort.Tensor('float32', pixels.slice(0, n * 784), [n, 1, 28, 28]);
  const out = await session.run({ input });
  const p = out.probabilities.data, z = out.logits.data;
  if (out.probabilities.dims.join('x') !== `${n}x10` || out.logits.dims.join('x') !== `${n}x10`)
    throw new Error(`output shapes ${out.probabilities.dims} / ${out.logits.dims}, expected ${n}x10`);
  let dp = 0, dz = 0, differ = 0;
  for (let i = 0; i < n * 10; i++) {
    dp = Math.max(dp, Math.abs(p[i] - wantP[i]));
    dz = Math.max(dz, Math.abs(z[i] - wantZ[i]));
  }
  for (let i = 0; i < n; i++) if (argmax(p, i) !== argmax(wantP, i)) differ++;
  console.log(`${path.basename(model)}: ${n} images, max |dprob| ${dp.toExponential(2)}, ` +
              `max |dlogit| ${dz.toExponential(2)}, predictions differing ${differ}`);
  return dp <= tol && differ === 0;
}

async function main() {
  const [nArg, tolArg, ...rest] = process.argv.slice(2);
  const n = parseInt(nArg, 10), tol = parseFloat(tolArg);
  let ok = rest.length >= 2;
  for (let i = 0; i + 1 < rest.length; i += 2) ok = (await compare(rest[i], rest[i + 1], n, tol)) && ok;
  if (!ok) process.exit(1);
}

main().catch((e) => { console.error(`ort_compare: ${e.message}`); process.exit(1); });

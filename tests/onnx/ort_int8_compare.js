// ort_int8_compare.js — runs an int8 ONNX export (`digits export --format
// onnx` of a `digits quantize` file) in ONNX Runtime (npm onnxruntime-node,
// CPU) on the first N images of an MNIST IDX file and compares with digits'
// own int8 logits (`digits eval --int8-logits FILE` on the same images):
//   node ort_int8_compare.js N STEPS DIFFER IMAGES-IDX MODEL.onnx LOGITS.txt [MODEL.onnx LOGITS.txt ...]
// Prints one line per model: how many logits differ and by how many
// quantization steps at worst (ORT's logit / scale against digits' q - zp),
// and how many predictions (argmax) differ. Exit 1 if a logit differs by more
// than STEPS steps or more than DIFFER predictions differ.
// Left out: timing (bench/int8.sh), other execution providers.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

// The first n images (n x 784 uint8) of an IDX3 file.
function readImages(file, n) {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x803 || b.readUInt32BE(4) < n) throw new Error(`${file}: not an IDX3 file of ${n}+ images`);
  return new Uint8Array(b.buffer, b.byteOffset + 16, n * 784).slice();
}

// digits' int8 logits: header "# ... real = SCALE * (q - ZP)", then
// "index label predicted l0..l9" per image.
function readLogits(file, n) {
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  const m = /real = ([0-9.eE+-]+) \* \(q - (-?\d+)\)/.exec(lines[0]);
  if (!m || lines.length - 1 < n) throw new Error(`${file}: not ${n} lines of int8 logits`);
  const q = new Int32Array(n * 10), pred = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const f = lines[i + 1].split(' ').map(Number);
    pred[i] = f[2];
    for (let k = 0; k < 10; k++) q[i * 10 + k] = f[3 + k];
  }
  return { scale: parseFloat(m[1]), zp: parseInt(m[2], 10), q, pred };
}

function argmax(a, i) {
  let best = 0;
  for (let k = 1; k < 10; k++) if (a[i * 10 + k] > a[i * 10 + best]) best = k;
  return best;
}

async function compare(model, logitsFile, pixels, n, maxSteps, maxDiffer) {
  const want = readLogits(logitsFile, n);
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 2 });
  const out = await session.run({ input: new ort.Tensor('uint8', pixels, [n, 1, 28, 28]) });
  const z = out.logits.data;
  if (out.logits.dims.join('x') !== `${n}x10` || out.probabilities.dims.join('x') !== `${n}x10`)
    throw new Error(`output shapes ${out.logits.dims} / ${out.probabilities.dims}, expected ${n}x10`);
  let worst = 0, off = 0, differ = 0;
  for (let i = 0; i < n * 10; i++) {
    const steps = Math.abs(Math.round(z[i] / want.scale) - (want.q[i] - want.zp));
    worst = Math.max(worst, steps);
    if (steps) off++;
  }
  for (let i = 0; i < n; i++) if (argmax(z, i) !== want.pred[i]) differ++;
  console.log(`${path.basename(model)}: ${n} images, logits differing ${off}/${n * 10}, ` +
              `worst ${worst} quantization step(s) (scale ${want.scale.toPrecision(4)}), predictions differing ${differ}`);
  return worst <= maxSteps && differ <= maxDiffer;
}

async function main() {
  const [nArg, stepsArg, differArg, images, ...rest] = process.argv.slice(2);
  const n = parseInt(nArg, 10), steps = parseInt(stepsArg, 10), differ = parseInt(differArg, 10);
  const pixels = readImages(images, n);
  let ok = rest.length >= 2;
  for (let i = 0; i + 1 < rest.length; i += 2) ok = (await compare(rest[i], rest[i + 1], pixels, n, steps, differ)) && ok;
  if (!ok) process.exit(1);
}

main().catch((e) => { console.error(`ort_int8_compare: ${e.message}`); process.exit(1); });

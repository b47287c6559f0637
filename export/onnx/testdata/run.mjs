// Runs an ONNX model in onnxruntime-node for the Go tests of package onnx.
//
//   node run.mjs REQUEST.json
//
// REQUEST: {"ort": "<dir holding node_modules/onnxruntime-node>", "model": "model.onnx",
//           "feeds": {"name": {"type": "int64"|"float32", "dims": [..], "file": "raw.bin"}},
//           "out": "<dir>"}
// Feeds are raw little-endian files. Every output is written to OUT/<name>.bin
// (raw little-endian float32) and its dims to OUT/outputs.json.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const req = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ort = createRequire(join(req.ort, 'node_modules', 'x.js'))('onnxruntime-node');

const session = await ort.InferenceSession.create(req.model, {
  executionProviders: ['cpu'],
  intraOpNumThreads: 2,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
});
const feeds = {};
for (const [name, f] of Object.entries(req.feeds)) {
  const buf = readFileSync(f.file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const data = f.type === 'int64' ? new BigInt64Array(ab) : new Float32Array(ab);
  feeds[name] = new ort.Tensor(f.type, data, f.dims);
}
const results = await session.run(feeds);
const dims = {};
for (const [name, t] of Object.entries(results)) {
  if (t.type !== 'float32') throw new Error(`output ${name} is ${t.type}, want float32`);
  writeFileSync(join(req.out, name + '.bin'), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  dims[name] = t.dims;
}
writeFileSync(join(req.out, 'outputs.json'), JSON.stringify(dims));

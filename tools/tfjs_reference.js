// Reference outputs of a TF.js graph model, from TensorFlow.js itself (tfjs-converter + the WASM backend,
// no native code): used by test/models/test_tfjs_graph.py for parity.
// usage: node tfjs_reference.js MODEL.json INPUT.f32 SHAPE(comma-separated) OUT_PREFIX [float32|int32]
// writes OUT_PREFIX.json ({name: shape} in the signature's output order) and OUT_PREFIX.<i>.f32 per output.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-wasm');
const { loadGraphModel } = require('@tensorflow/tfjs-converter');

async function main() {
  const [modelPath, inputPath, shapeArg, outPrefix, dtype = 'float32'] = process.argv.slice(2);
  await tf.setBackend('wasm');
  const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
  const group = json.weightsManifest[0];
  const bin = fs.readFileSync(path.join(path.dirname(modelPath), group.paths[0]));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const model = await loadGraphModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: group.weights, weightData }),
  );
  const raw = fs.readFileSync(inputPath);
  const shape = shapeArg.split(',').map(Number);
  const values = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const input = dtype === 'int32' ? tf.tensor(Int32Array.from(values), shape, 'int32') : tf.tensor(values, shape);
  const names = Object.values(json.signature.outputs).map((o) => o.name);
  let outs = await model.executeAsync(input, names);
  if (!Array.isArray(outs)) outs = [outs];
  const meta = {};
  outs.forEach((t, i) => {
    meta[names[i]] = t.shape;
    fs.writeFileSync(`${outPrefix}.${i}.f32`, Buffer.from(Float32Array.from(t.dataSync()).buffer));
  });
  fs.writeFileSync(`${outPrefix}.json`, JSON.stringify(meta));
}
main().catch((e) => { console.error(e); process.exit(1); });

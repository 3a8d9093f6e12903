// One training step of the benchmark's training row split in two, on the active backend: microBatchGrads (forward
// and backward) and AdamW.step, each with its wall time and the process's minor page faults (/proc/self/stat), for
// a few steps in one process. For before/after comparisons of the optimizer (the side-by-side row is bench.ts --rows
// train). Usage: npx tsx scripts/bench/train_time.ts [--steps 3] [--model out/bench_model]
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../../lib/backend';
import { SafetensorsFile } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';
import { AdamW, fusedParameterSets, paramGroups } from '../../train/adamw';
import { microBatchGrads } from '../../train/step';
import { DEFAULT_DIR, isComplete, makeBenchModel } from './make_bench_model';
import { arg } from './args';

/** Minor page faults of this process so far (field 10 of /proc/self/stat). */
const minorFaults = () => Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[7]);

async function main(): Promise<void> {
  const dir = path.resolve(arg('--model', DEFAULT_DIR));
  if (!isComplete(dir)) makeBenchModel(dir);
  await initBackend({ quiet: true });
  const model = loadModel(dir);
  const f = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
  const rows = (k: string) => {
    const h = f.read(k);
    const [B, L] = h.shape as [number, number];
    return Array.from({ length: B }, (_, b) => Array.from(h.data.subarray(b * L, (b + 1) * L), Number));
  };
  const pv = f.read('train.pixel_values');
  const batch = { inputIds: rows('train.input_ids'), labels: rows('train.labels'), pixelValues: tf.tensor2d(pv.data as Float32Array, pv.shape as [number, number]), imageGridThw: JSON.parse(f.metadata.train_grid_thw!) as number[][] };
  f.close();
  // the benchmark row's optimizer: lr 1e-5, weight decay 0.01 on every parameter
  const params = new Map([...model.namedParameters()].filter(([, v]) => v.trainable));
  const opt = new AdamW(params, paramGroups(params, 0.01, true), { lr: 1e-5, betas: [0.9, 0.999], eps: 1e-8, fused: fusedParameterSets(model, params) });
  const steps = Number(arg('--steps', '3'));
  for (let i = 0; i < steps; i++) {
    const [f0, t0] = [minorFaults(), performance.now()];
    const { loss, grads } = microBatchGrads(model, batch, params, 1);
    const [f1, t1] = [minorFaults(), performance.now()];
    opt.step(grads);
    const [f2, t2] = [minorFaults(), performance.now()];
    tf.dispose([...grads.values(), loss]);
    console.log(`${describeBackend()}; step ${i + 1}: grads ${(t1 - t0).toFixed(0)} ms (${f1 - f0} page faults), AdamW ${(t2 - t1).toFixed(0)} ms (${f2 - f1} page faults)`);
  }
  opt.dispose();
  batch.pixelValues.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

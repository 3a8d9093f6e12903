// Per-kernel profile of one decode step (and optionally one prefill) on the active backend: how many kernels of each
// kind run, and the time each kind takes (tf.profile times every kernel on its own, with a read of its output, so the
// sum exceeds the unprofiled step; the counts and the shares are what to read). Used for docs/benchmark.md.
// --train profiles one training step of the benchmark's training row instead (microBatchGrads + AdamW).
// --tf-ops (native backend): instead of tf.profile, the wall time of every TensorFlow op call (tfjs-node's
// executeOp, which runs the op synchronously) over --steps steps, nothing added between them: per-op costs as the
// step pays them, and the time the step spends outside TensorFlow (tfjs and our JavaScript).
// Usage: npx tsx scripts/bench/profile_step.ts [--context 128] [--prefill] [--train] [--tf-ops [--vision] [--steps 40]] [--model out/bench_model]
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../../lib/backend';
import { decodeOne, prefill } from '../../generation/generate';
import { SafetensorsFile } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';
import { AdamW, fusedParameterSets, paramGroups } from '../../train/adamw';
import { microBatchGrads } from '../../train/step';
import { DEFAULT_DIR, isComplete, makeBenchModel } from './make_bench_model';
import { arg } from './args';

function table(kernels: { name: string; kernelTimeMs: number | { error: string } }[], title: string): string {
  const by = new Map<string, { n: number; ms: number }>();
  for (const k of kernels) {
    const e = by.get(k.name) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    by.set(k.name, e);
  }
  const total = [...by.values()].reduce((s, e) => s + e.ms, 0);
  const rows = [...by.entries()].sort((a, b) => b[1].ms - a[1].ms);
  return [`${title}: ${kernels.length} kernels, ${total.toFixed(1)} ms summed`, '', '| kernel | count | ms | share |', '|---|---:|---:|---:|',
    ...rows.map(([n, e]) => `| ${n} | ${e.n} | ${e.ms.toFixed(2)} | ${((100 * e.ms) / total).toFixed(1)}% |`)].join('\n');
}

/**
 * Runs `step` `n` times with tfjs-node's executeOp timed per TF op name (the backend's binding object is swapped for
 * a copy whose executeOp is wrapped, then restored); prints the table per step.
 */
async function timeTfOps(title: string, step: () => Promise<void>, n: number): Promise<void> {
  const be = tf.backend() as unknown as { binding: Record<string, unknown> & { executeOp: (name: string, ...rest: unknown[]) => unknown } };
  const original = be.binding;
  const acc = new Map<string, { n: number; ms: number }>();
  const timed: Record<string, unknown> = {};
  for (const k of Object.getOwnPropertyNames(original)) timed[k] = typeof original[k] === 'function' ? (original[k] as (...a: unknown[]) => unknown).bind(original) : original[k];
  timed.executeOp = (name: string, ...rest: unknown[]) => {
    const t0 = performance.now();
    try {
      return original.executeOp(name, ...rest);
    } finally {
      const e = acc.get(name) ?? { n: 0, ms: 0 };
      e.n++;
      e.ms += performance.now() - t0;
      acc.set(name, e);
    }
  };
  be.binding = timed as typeof original;
  const t0 = performance.now();
  try {
    for (let i = 0; i < n; i++) await step();
  } finally {
    be.binding = original;
  }
  const wall = (performance.now() - t0) / n;
  const inTf = [...acc.values()].reduce((a, e) => a + e.ms, 0) / n, calls = [...acc.values()].reduce((a, e) => a + e.n, 0) / n;
  const rows = [...acc.entries()].sort((a, b) => b[1].ms - a[1].ms)
    .map(([op, e]) => `| ${op} | ${(e.n / n).toFixed(0)} | ${(e.ms / n).toFixed(2)} | ${((1000 * e.ms) / e.n).toFixed(1)} | ${((100 * e.ms) / n / wall).toFixed(1)}% |`);
  console.log([`${title}: ${wall.toFixed(1)} ms a step (mean of ${n}); ${calls.toFixed(0)} TensorFlow ops taking ${inTf.toFixed(1)} ms, ${(wall - inTf).toFixed(1)} ms outside them`, '',
    '| TF op | calls a step | ms a step | us a call | share of the step |', '|---|---:|---:|---:|---:|', ...rows, ''].join('\n'));
}

async function main(): Promise<void> {
  const dir = path.resolve(arg('--model', DEFAULT_DIR));
  if (!isComplete(dir)) makeBenchModel(dir);
  await initBackend({ quiet: true });
  const ctx = Number(arg('--context', '128'));
  const model = loadModel(dir);
  const inp = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
  const ids = Array.from(inp.read('decode.context_ids').data).slice(0, ctx).map(Number);
  const toks = Array.from(inp.read('decode.tokens').data).map(Number);
  inp.close();
  console.log(`backend ${describeBackend()}; model ${dir}; context ${ctx}`);
  if (process.argv.includes('--train')) {
    const f = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
    const rows = (k: string) => { const h = f.read(k); const [B, L] = h.shape as [number, number]; return Array.from({ length: B }, (_, b) => Array.from(h.data.subarray(b * L, (b + 1) * L), Number)); };
    const h = f.read('train.pixel_values');
    const batch = { inputIds: rows('train.input_ids'), labels: rows('train.labels'), pixelValues: tf.tensor2d(h.data as Float32Array, h.shape as [number, number]), imageGridThw: JSON.parse(f.metadata.train_grid_thw!) as number[][] };
    const params = new Map([...model.namedParameters()].filter(([, v]) => v.trainable));
    const opt = new AdamW(params, paramGroups(params, 0.01, true), { lr: 1e-5, betas: [0.9, 0.999], eps: 1e-8, fused: fusedParameterSets(model, params) });
    const step = () => {
      const { loss, grads } = microBatchGrads(model, batch, params, 1);
      opt.step(grads);
      tf.dispose([...grads.values(), loss]);
    };
    step(); // warm-up
    const t0 = performance.now();
    step();
    const wall = performance.now() - t0;
    const p = await tf.profile(() => { step(); return tf.scalar(0); });
    const kernels = await Promise.all(p.kernels.map(async (k) => ({ ...k, kernelTimeMs: await k.kernelTimeMs })));
    console.log(`\none training step unprofiled: ${wall.toFixed(0)} ms\n\n${table(kernels, 'training step')}`);
    opt.dispose();
    model.dispose();
    return;
  }
  if (process.argv.includes('--tf-ops')) {
    const n = Number(arg('--steps', '40'));
    if (process.argv.includes('--vision')) {
      const f = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
      const h = f.read('vision.pixel_values');
      const pv = tf.tensor2d(h.data as Float32Array, h.shape as [number, number]), grid = JSON.parse(f.metadata.vision_grid_thw!) as number[][];
      f.close();
      model.model.getImageFeatures(pv, grid).dispose(); // warm-up
      await timeTfOps(`vision encode of grid ${JSON.stringify(grid[0])} (${describeBackend()})`, async () => model.model.getImageFeatures(pv, grid).dispose(), Math.max(1, Math.round(n / 10)));
      pv.dispose();
    }
    if (process.argv.includes('--prefill')) {
      (await prefill(model, { inputIds: [ids] })).state.cache.dispose(); // warm-up
      await timeTfOps(`prefill of ${ctx} tokens (${describeBackend()})`, async () => (await prefill(model, { inputIds: [ids] })).state.cache.dispose(), Math.max(1, Math.round(n / 10)));
    }
    const { state } = await prefill(model, { inputIds: [ids] });
    for (let s = 0; s < 3; s++) await decodeOne(model, [toks[s]!], state);
    let s = 3;
    await timeTfOps(`decode at context ${ctx} (${describeBackend()})`, async () => void (await decodeOne(model, [toks[s++ % toks.length]!], state)), n);
    state.cache.dispose();
    model.dispose();
    return;
  }
  if (process.argv.includes('--prefill')) {
    (await prefill(model, { inputIds: [ids] })).state.cache.dispose(); // warm-up: first-call costs stay out
    const p = await tf.profile(async () => {
      (await prefill(model, { inputIds: [ids] })).state.cache.dispose();
      return tf.scalar(0);
    });
    console.log('\n' + table(await Promise.all(p.kernels.map(async (k) => ({ ...k, kernelTimeMs: await k.kernelTimeMs }))), `prefill of ${ctx} tokens`));
  }
  const { state } = await prefill(model, { inputIds: [ids] });
  for (let s = 0; s < 3; s++) await decodeOne(model, [toks[s]!], state);
  const t0 = performance.now();
  await decodeOne(model, [toks[3]!], state);
  const wall = performance.now() - t0;
  const p = await tf.profile(async () => {
    await decodeOne(model, [toks[4]!], state);
    return tf.scalar(0);
  });
  const kernels = await Promise.all(p.kernels.map(async (k) => ({ ...k, kernelTimeMs: await k.kernelTimeMs })));
  console.log(`\none decode step unprofiled: ${wall.toFixed(1)} ms\n\n${table(kernels, `decode step at context ${ctx}`)}`);
  state.cache.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

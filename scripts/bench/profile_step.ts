// Per-kernel profile of one decode step (and optionally one prefill) on the active backend: how many kernels of each
// kind run, and the time each kind takes (tf.profile times every kernel on its own, with a read of its output, so the
// sum exceeds the unprofiled step; the counts and the shares are what to read). Used for docs/benchmark.md.
// Usage: npx tsx scripts/bench/profile_step.ts [--context 128] [--prefill] [--model out/bench_model]
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../../lib/backend';
import { decodeOne, prefill } from '../../generation/generate';
import { SafetensorsFile } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';
import { DEFAULT_DIR, isComplete, makeBenchModel } from './make_bench_model';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

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

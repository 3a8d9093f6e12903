// Our side of the full-size rows of scripts/gpu/gpu_run.sh: a GLM-4.6V-Flash-shaped folder (flash_torch.py make) loaded
// in float32 on the active backend (webgpu there): load time, GPU memory (nvidia-smi), prefill of its image + text,
// greedy decode steps, the last-token logits against PyTorch float32's (--logits FILE), and a per-kernel profile of
// one decode step (--profile FILE, markdown). One JSON line on stdout.
// Usage: node flash_run.js --model DIR [--decode-steps 16] [--logits torch_f32_logits.safetensors] [--profile out.md]
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, shutdownBackend } from '../../lib/backend';
import { decodeOne, prefill } from '../../generation/generate';
import { SafetensorsFile } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** This process's GPU memory per nvidia-smi, in MiB, or undefined where it cannot say. */
function gpuMiB(): number | undefined {
  const r = spawnSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const mine = r.stdout.split('\n').find((l) => l.split(',')[0]?.trim() === String(process.pid));
  return mine ? Number(mine.split(',')[1]) : undefined;
}

const argmax = (v: Float32Array) => v.reduce((best, x, i) => (x > v[best]! ? i : best), 0);

async function main(): Promise<void> {
  const dir = path.resolve(arg('--model')!);
  const steps = Number(arg('--decode-steps', '16'));
  await initBackend({ quiet: true });
  const res: Record<string, unknown> = { backend: describeBackend() };
  const f = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
  const px = f.read('pixel_values'), ids = Array.from(f.read('input_ids').data, Number);
  const grid = JSON.parse(f.metadata.image_grid_thw!) as number[][];
  f.close();
  let t0 = performance.now();
  const model = loadModel(dir);
  res.load_s = (performance.now() - t0) / 1000;
  res.params = model.numParameters();
  const pixelValues = tf.tensor2d(px.data as Float32Array, px.shape as [number, number]);
  const run = () => prefill(model, { inputIds: [ids], pixelValues, imageGridThw: grid });
  t0 = performance.now();
  const first = await run(); // the first prefill uploads the weights and compiles every shader
  res.first_prefill_s = (performance.now() - t0) / 1000;
  res.gpu_mib_after_upload = gpuMiB();
  first.state.cache.dispose();
  t0 = performance.now();
  const { logits, state } = await run();
  res.prefill_s = (performance.now() - t0) / 1000;
  res.prefill_tokens = ids.length;
  pixelValues.dispose();
  const last = logits[0]!;
  const want = arg('--logits');
  if (want && fs.existsSync(want)) {
    const ref = new SafetensorsFile(want).read('logits').data as Float32Array;
    let maxAbs = 0, maxRef = 0;
    for (let i = 0; i < ref.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(last[i]! - ref[i]!));
      maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    }
    Object.assign(res, { logits_max_abs_diff: maxAbs, logits_max_abs_ref: maxRef, argmax_ours: argmax(last), argmax_torch: argmax(ref) });
  }
  let tok = argmax(last);
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    t0 = performance.now();
    tok = argmax((await decodeOne(model, [tok], state))[0]!);
    times.push(performance.now() - t0);
  }
  const sorted = times.slice(1).sort((a, b) => a - b);
  res.decode_context = ids.length;
  res.decode_ms_median = sorted[Math.floor(sorted.length / 2)];
  res.decode_tokens_per_s = 1000 / (res.decode_ms_median as number);
  res.gpu_mib = gpuMiB();
  const profile = arg('--profile');
  if (profile) {
    const p = await tf.profile(async () => {
      await decodeOne(model, [tok], state);
      return tf.scalar(0);
    });
    const by = new Map<string, { n: number; ms: number }>();
    for (const k of p.kernels) {
      const ms = await k.kernelTimeMs;
      const e = by.get(k.name) ?? { n: 0, ms: 0 };
      e.n++;
      e.ms += typeof ms === 'number' ? ms : 0;
      by.set(k.name, e);
    }
    const total = [...by.values()].reduce((s, e) => s + e.ms, 0);
    const rows = [...by.entries()].sort((a, b) => b[1].ms - a[1].ms)
      .map(([n, e]) => `| ${n} | ${e.n} | ${e.ms.toFixed(2)} | ${((100 * e.ms) / total).toFixed(1)}% |`);
    fs.writeFileSync(profile, [`decode step at context ${ids.length} (${describeBackend()}): ${p.kernels.length} kernels, ${total.toFixed(1)} ms summed (each kernel timed alone)`,
      '', '| kernel | count | ms | share |', '|---|---:|---:|---:|', ...rows, ''].join('\n'));
  }
  state.cache.dispose();
  model.dispose();
  shutdownBackend();
  process.stdout.write(JSON.stringify(res) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`flash_run: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

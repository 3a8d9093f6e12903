// Decode ms/token on the active backend in one process, for before/after comparisons while iterating (the full
// side-by-side row is bench.ts --rows decode): prefill a context, 3 warm-up steps, then N timed steps; prints the
// median wall-clock and the median process CPU time (all threads) per step.
// Usage: npx tsx scripts/bench/decode_time.ts [--context 128] [--steps 30] [--model out/bench_model]
import * as path from 'path';
import { describeBackend, initBackend } from '../../lib/backend';
import { decodeOne, prefill } from '../../generation/generate';
import { SafetensorsFile } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';
import { DEFAULT_DIR, isComplete, makeBenchModel } from './make_bench_model';
import { arg, median } from './args';

async function main(): Promise<void> {
  const dir = path.resolve(arg('--model', DEFAULT_DIR));
  if (!isComplete(dir)) makeBenchModel(dir);
  await initBackend({ quiet: true });
  const ctx = Number(arg('--context', '128'));
  const steps = Number(arg('--steps', '30'));
  const model = loadModel(dir);
  const inp = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
  const ids = Array.from(inp.read('decode.context_ids').data).slice(0, ctx).map(Number);
  const toks = Array.from(inp.read('decode.tokens').data).map(Number);
  inp.close();
  const { state } = await prefill(model, { inputIds: [ids] });
  const wall: number[] = [], cpu: number[] = [];
  for (let s = 0; s < steps + 3; s++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    await decodeOne(model, [toks[s % toks.length]!], state);
    const c = process.cpuUsage(c0);
    if (s >= 3) { wall.push(performance.now() - t0); cpu.push((c.user + c.system) / 1000); }
  }
  console.log(`${describeBackend()}; context ${ctx}; ${steps} steps: median ${median(wall).toFixed(2)} ms/token wall, ${median(cpu).toFixed(2)} ms CPU (min ${Math.min(...wall).toFixed(2)} / ${Math.min(...cpu).toFixed(2)})`);
  state.cache.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

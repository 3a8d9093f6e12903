// Prefill ms on the active backend in one process, with the causal attention blocks of layers/ops/query_blocks.ts
// (the default) and without them, alternating, for before/after comparisons (the side-by-side row is bench.ts --rows
// long). The prompt is the benchmark's decode context cut to --context tokens; one warm-up round, then --runs rounds.
// Usage: npx tsx scripts/bench/prefill_time.ts [--context 4096] [--runs 6] [--rows 256,off] [--model out/bench_model]
import * as path from 'path';
import { describeBackend, initBackend } from '../../lib/backend';
import { prefill } from '../../generation/generate';
import { setScoreBlockBytesForTests } from '../../layers/ops/query_blocks';
import { SafetensorsFile } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';
import { DEFAULT_DIR, isComplete, makeBenchModel } from './make_bench_model';
import { arg, median } from './args';

async function main(): Promise<void> {
  const dir = path.resolve(arg('--model', DEFAULT_DIR));
  if (!isComplete(dir)) makeBenchModel(dir);
  await initBackend({ quiet: true });
  const ctx = Number(arg('--context', '4096'));
  const runs = Number(arg('--runs', '6'));
  // rows of a causal block; 'off' makes them larger than any prompt (the spec knob, so the budget path stays as is)
  const variants = arg('--rows', '256,off').split(',');
  const bad = variants.find((v) => v !== 'off' && !(Number.isInteger(Number(v)) && Number(v) > 0));
  if (bad !== undefined) throw new Error(`--rows: expected row counts or 'off', got '${bad}'`);
  const model = loadModel(dir);
  const inp = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
  const ids = Array.from(inp.read('decode.context_ids').data).slice(0, ctx).map(Number);
  inp.close();
  if (ids.length < ctx) throw new Error(`--context ${ctx}: the inputs hold ${ids.length} context tokens`);
  const times = new Map<string, number[]>(variants.map((v) => [v, []]));
  try {
    for (let r = 0; r <= runs; r++) {
      for (const v of variants) {
        setScoreBlockBytesForTests(undefined, v === 'off' ? Infinity : Number(v));
        const t0 = performance.now();
        (await prefill(model, { inputIds: [ids] })).state.cache.dispose();
        if (r > 0) times.get(v)!.push(performance.now() - t0);
      }
    }
  } finally {
    setScoreBlockBytesForTests(undefined);
  }
  for (const [v, ts] of times) {
    console.log(`${describeBackend()}; prefill of ${ctx} tokens, causal blocks ${v === 'off' ? 'off' : `of ${v} rows`}: median ${median(ts).toFixed(1)} ms, min ${Math.min(...ts).toFixed(1)} (${ts.length} runs)`);
  }
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

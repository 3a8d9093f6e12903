// GFLOP/s of each matMul form on tfjs-backend-wasm, stock kernels vs lib/kernels/wasm_matmul.ts, per thread count.
// Usage: npx tsx scripts/bench/matmul.ts [--threads 1,2] [--only REGEX] [--min-ms 1000]
// Each thread count runs in its own child process (the wasm build and its thread pool are fixed at init).
// Times include `await y.data()`, as in tfjs_notes.md appendix A.8; each figure is the best iteration, stock and
// override alternating per case, so that load from other processes skews the comparison less. "grad" rows run
// tf.grads, i.e. the forward and both input gradients: 3 products, counted as 6·M·K·N flops.
import { spawnSync } from 'child_process';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { installWasmMatMul } from '../../lib/kernels/wasm_matmul';
import { prepareWasmThreads, setWasmThreads } from '../../lib/kernels/wasm_threads';
import { arg } from './args';

interface Case { name: string; flops: number; make: () => { run: () => tf.Tensor; inputs: tf.Tensor[] } }

const R = (shape: number[]) => tf.randomNormal(shape, 0, 1, 'float32', 7);
const mm = (name: string, sa: number[], sb: number[], tA: boolean, tB: boolean, M: number, K: number, N: number, batch = 1): Case => ({
  name, flops: 2 * batch * M * K * N,
  make: () => { const a = R(sa), b = R(sb); return { run: () => tf.matMul(a, b, tA, tB), inputs: [a, b] }; },
});

const CASES: Case[] = [
  mm('plain  [128,1024]x[1024,4096]', [128, 1024], [1024, 4096], false, false, 128, 1024, 4096),
  mm('transB [128,1024]x[4096,1024]ᵀ', [128, 1024], [4096, 1024], false, true, 128, 1024, 4096),
  mm('transA [1024,128]ᵀx[1024,4096]', [1024, 128], [1024, 4096], true, false, 128, 1024, 4096),
  mm('batched x@W [2,128,1024]x[1024,1024]', [2, 128, 1024], [1024, 1024], false, false, 256, 1024, 1024),
  mm('QKᵀ [16,128,64]x[16,128,64]ᵀ', [16, 128, 64], [16, 128, 64], false, true, 128, 64, 128, 16),
  mm('AV [16,128,128]x[16,128,64]', [16, 128, 128], [16, 128, 64], false, false, 128, 128, 64, 16),
  mm('decode transB [1,4096]x[4096,4096]ᵀ', [1, 4096], [4096, 4096], false, true, 1, 4096, 4096),
  {
    name: 'grad matMul [128,1024]x[1024,4096]', flops: 6 * 128 * 1024 * 4096,
    make: () => {
      const a = R([128, 1024]), b = R([1024, 4096]);
      const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.matMul(x, y)));
      return { run: () => tf.tidy(() => { const [ga, gb] = g([a, b]); return tf.add(tf.sum(ga!), tf.sum(gb!)); }), inputs: [a, b] };
    },
  },
];

/** Best milliseconds per call over at least 3 calls and `minMs`, after one warm-up call. */
async function timeIt(run: () => tf.Tensor, minMs: number): Promise<number> {
  const once = async () => { const t0 = performance.now(); const y = run(); await y.data(); y.dispose(); return performance.now() - t0; };
  await once();
  let best = Infinity, iters = 0;
  const t0 = performance.now();
  while (iters < 3 || performance.now() - t0 < minMs) {
    best = Math.min(best, await once());
    if (++iters >= 200) break;
  }
  return best;
}

const MATMUL_KERNELS = ['BatchMatMul', '_FusedMatMul'];

async function child(threads: number, only: RegExp, minMs: number): Promise<void> {
  setWasmThreads(threads);
  const restore = prepareWasmThreads();
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not start');
  } finally {
    restore();
  }
  const cases = CASES.filter((c) => only.test(c.name));
  const stockConfigs = MATMUL_KERNELS.map((k) => tf.getKernel(k, 'wasm'));
  const use = (mode: 'stock' | 'override') => {
    if (mode === 'override') return installWasmMatMul();
    for (const k of MATMUL_KERNELS) tf.unregisterKernel(k, 'wasm');
    for (const config of stockConfigs) tf.registerKernel(config);
  };
  const rows: Record<string, { stock?: number; override?: number }> = {};
  for (const c of cases) {
    const { run, inputs } = c.make();
    const row = (rows[c.name] = {} as { stock?: number; override?: number });
    for (const mode of ['stock', 'override', 'stock', 'override'] as const) {
      use(mode);
      row[mode] = Math.min(row[mode] ?? Infinity, await timeIt(run, minMs / 2));
    }
    tf.dispose(inputs);
  }
  process.stdout.write(JSON.stringify({ threads: getThreadsCount(), rows }) + '\n');
  tf.engine().removeBackend('wasm'); // ends the pthread workers so the child exits
}

function main(): void {
  const only = arg('--only', '.');
  const minMs = arg('--min-ms', '1000');
  if (process.argv.includes('--child')) {
    child(Number(arg('--child', '1')), new RegExp(only), Number(minMs)).catch((e) => { console.error(e); process.exit(1); });
    return;
  }
  const gf = (flops: number, ms?: number) => (ms === undefined ? '' : `${ms.toFixed(1)} ms ${(flops / ms / 1e6).toFixed(1)} GF/s`);
  console.log(['case', 'threads', 'stock', 'override', 'speed-up'].join('\t'));
  for (const t of arg('--threads', '1,2').split(',').map(Number)) {
    const r = spawnSync(process.execPath, [...process.execArgv, __filename, '--child', String(t), '--only', only, '--min-ms', minMs], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (r.status !== 0 || !line) throw new Error(`bench child for ${t} thread(s) failed (exit ${r.status})`);
    const { threads, rows } = JSON.parse(line) as { threads: number; rows: Record<string, { stock?: number; override?: number }> };
    for (const c of CASES.filter((c) => rows[c.name])) {
      const { stock, override } = rows[c.name]!;
      const speedUp = stock !== undefined && override !== undefined ? `${(stock / override).toFixed(1)}x` : '';
      console.log([c.name, threads, gf(c.flops, stock), gf(c.flops, override), speedUp].join('\t'));
    }
  }
}

main();

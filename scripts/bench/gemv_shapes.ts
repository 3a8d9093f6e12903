// The decode step's weight products one shape at a time, ours (TensorFlow's MatMul in Linear's form, x Wᵀ, and the
// package's own Glm46vLinear where it runs) beside PyTorch's F.linear in the same loop: 8 distinct weights of each shape of the benchmark model's decoder layer (q, k, v, o,
// gate_up, down: 360 MB in all, more than this machine's last-level cache), one token, each product timed alone.
// Ms per 8 layers, the mean of 20 rounds after 10 warm-up rounds. For docs/benchmark.md's decode profile.
// Usage: [GLM46V_PYTHON=python] [TF_NUM_INTRAOP_THREADS=2] npx tsx scripts/bench/gemv_shapes.ts (the one thread count for both)
import { spawnSync } from 'child_process';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../../lib/backend';
import { linearFused } from '../../lib/kernels/tf_fused';

const SHAPES: Array<[string, [number, number]]> = [['q', [1024, 1024]], ['k', [256, 1024]], ['v', [256, 1024]], ['o', [1024, 1024]], ['gate_up', [5632, 1024]], ['down', [1024, 2816]]];
const LAYERS = 8, WARMUP = 10, ROUNDS = 20;

const TORCH = `
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
shapes = ${JSON.stringify(SHAPES.map(([, s]) => s))}
W = [[torch.randn(*s) for s in shapes] for _ in range(${LAYERS})]
x = {1024: torch.randn(1, 1024), 2816: torch.randn(1, 2816)}
acc = [0.0] * len(shapes)
with torch.no_grad():
    for r in range(${WARMUP + ROUNDS}):
        for l in range(${LAYERS}):
            for i, w in enumerate(W[l]):
                t0 = time.perf_counter(); torch.nn.functional.linear(x[w.shape[1]], w)
                if r >= ${WARMUP}: acc[i] += time.perf_counter() - t0
print(" ".join(f"{a / ${ROUNDS} * 1000:.2f}" for a in acc))
`;

async function main(): Promise<void> {
  await initBackend({ quiet: true });
  const W = Array.from({ length: LAYERS }, () => SHAPES.map(([, s]) => tf.randomNormal(s)));
  const x: Record<number, tf.Tensor> = { 1024: tf.randomNormal([1, 1024]), 2816: tf.randomNormal([1, 2816]) };
  const time = (product: (x: tf.Tensor2D, w: tf.Tensor) => tf.Tensor | undefined): number[] | undefined => {
    const acc = SHAPES.map(() => 0);
    for (let r = 0; r < WARMUP + ROUNDS; r++) {
      for (const layer of W) {
        for (const [i, w] of layer.entries()) {
          const t0 = performance.now();
          const y = product(x[w.shape[1]!]! as tf.Tensor2D, w);
          if (!y) return undefined;
          if (r >= WARMUP) acc[i] += performance.now() - t0;
          y.dispose();
        }
      }
    }
    return acc.map((a) => a / ROUNDS);
  };
  const row = (name: string, ms: number[]) => `| ${name} | ${ms.map((m) => m.toFixed(2)).join(' | ')} | ${ms.reduce((a, b) => a + b, 0).toFixed(2)} |`;
  const lines = [`| ms per ${LAYERS} layers | ${SHAPES.map(([n, s]) => `${n} [${s}]`).join(' | ')} | sum |`, `|---|${SHAPES.map(() => '---:|').join('')}---:|`,
    row(`ours, MatMul (${describeBackend()})`, time((xi, w) => tf.matMul(xi, w, false, true))!)];
  const own = time((xi, w) => linearFused(xi, w, undefined));
  if (own) lines.push(row('ours, Glm46vLinear', own));
  const python = process.env.GLM46V_PYTHON;
  if (python) {
    const threads = process.env.TF_NUM_INTRAOP_THREADS ?? '2';
    const r = spawnSync(python, ['-c', TORCH, threads], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`PyTorch side failed: ${(r.stderr || '').trim().split('\n').pop()}`);
    lines.push(row(`PyTorch F.linear, ${threads} threads`, r.stdout.trim().split(' ').map(Number)));
  }
  console.log(lines.join('\n'));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

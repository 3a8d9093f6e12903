// Run by `glm46v setup` in a child process: loads the fresh native build, multiplies two seeded matrices on it and on
// wasm, and prints one JSON line. A child, so that a build that crashes on load cannot take the installer with it.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeBackend, nativeUsesGpu } from './load';

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

async function product(backend: string): Promise<Float32Array> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not start`);
  const y = tf.tidy(() => tf.matMul(tf.tensor2d(seeded(64 * 96, 1), [64, 96]), tf.tensor2d(seeded(96 * 80, 2), [96, 80])));
  const out = (await y.data()) as Float32Array;
  y.dispose();
  return out;
}

async function main(): Promise<void> {
  const load = loadNativeBackend();
  if (!load.ok) throw new Error(load.reason);
  const native = await product('tensorflow');
  const gpu = nativeUsesGpu();
  const wasm = await product('wasm');
  let maxDiff = 0;
  for (let i = 0; i < wasm.length; i++) maxDiff = Math.max(maxDiff, Math.abs(native[i]! - wasm[i]!));
  process.stdout.write(JSON.stringify({ tensorflow: load.info.tensorflow, gpu, maxDiff }) + '\n');
}

main().catch((e: unknown) => {
  process.stdout.write(JSON.stringify({ error: (e instanceof Error ? e.message : String(e)).split('\n')[0] }) + '\n');
  process.exitCode = 1;
});

// Child process of spec/lib/kernels_threads.spec.ts: starts the backend the package's way (GLM46V_WASM_THREADS
// from the environment), compares a few products and gradients with cpu, prints one JSON line, releases the
// backend and then has to end by itself (pthread workers left running would keep it alive).
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { initBackend, setBackendPreference, shutdownBackend } from '../../lib/backend';
import { wasmPThreads } from '../../lib/kernels/wasm_threads';
import { diff } from './expect_close';
import { onBackend, seededTensor } from './on_backend';

function compute(): Float32Array[] {
  return tf.tidy(() => {
    const x = seededTensor([96, 256], 1), w = seededTensor([192, 256], 2);
    const q = seededTensor([2, 4, 32, 16], 3), k = seededTensor([2, 4, 32, 16], 4);
    const attn = (q: tf.Tensor, k: tf.Tensor) => tf.matMul(q, k, false, true);
    const emb = (e: tf.Tensor) => tf.gather(e, tf.tensor1d([3, 1, 3, 0], 'int32'));
    return [
      tf.matMul(x, w, false, true), tf.matMul(tf.reshape(x, [2, 48, 256]), tf.transpose(w)),
      ...tf.grads(attn)([q, k]), ...tf.grads(emb)([seededTensor([5, 8], 5)]),
    ].map((t) => t.dataSync() as Float32Array);
  });
}

(async () => {
  setBackendPreference('wasm');
  await initBackend({ quiet: true });
  const ours = compute();
  const ref = await onBackend('cpu', compute);
  const maxDiff = Math.max(...ours.map((o, i) => diff(o, ref[i]!, 0, 0).maxAbs));
  const pool = wasmPThreads();
  const workers = pool ? { running: pool.runningWorkers.length, idle: pool.unusedWorkers.length } : null;
  process.stdout.write(JSON.stringify({ backend: tf.getBackend(), threads: getThreadsCount(), maxDiff, workers }) + '\n');
  shutdownBackend();
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});

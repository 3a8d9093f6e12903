// Cross-backend checks: run a computation on another tfjs backend (e.g. the 'cpu' reference) and bring plain
// arrays back, so no tensor of one backend is ever handed to another; the active backend is restored after.
import * as tf from '@tensorflow/tfjs';

/** Runs `fn` (which must return host data, not tensors) with `name` as the active backend. */
export async function onBackend<T>(name: string, fn: () => T): Promise<T> {
  const prev = tf.getBackend();
  if (!(await tf.setBackend(name))) throw new Error(`onBackend: backend '${name}' did not start`);
  try {
    return fn();
  } finally {
    await tf.setBackend(prev);
  }
}

/** Deterministic values in [-1, 1) (an LCG), identical on every backend. */
export function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** A float32 tensor of the given shape filled by `seeded`. */
export function seededTensor(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(seeded(tf.util.sizeFromShape(shape), seed), shape, 'float32');
}

// Cross-backend checks: run a computation on another tfjs backend (e.g. the 'cpu' reference) and bring plain
// arrays back, so no tensor of one backend is ever handed to another; the active backend is restored after.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { installKernelOverrides } from '../../lib/kernels';
import { loadNativeBackend } from '../../lib/native/load';

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

/**
 * Mocha hooks for the describe block they are called in: it runs on the native backend (loaded, made active, with
 * its kernel overrides), and the backend before it is restored after.
 */
export function onNativeBackendHooks(): void {
  let prev: string;
  before(async () => {
    prev = tf.getBackend();
    expect(loadNativeBackend().ok).to.equal(true);
    expect(await tf.setBackend('tensorflow')).to.equal(true);
    installKernelOverrides('tensorflow');
  });
  after(async () => {
    await tf.setBackend(prev);
  });
}

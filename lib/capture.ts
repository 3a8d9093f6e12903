// Captures the outputs of named modules during one call, as PyTorch forward hooks do (`out:<module path>`).
// The model code stays hook-free: the named modules' `forward` methods are wrapped for the call's duration.
import * as tf from '@tensorflow/tfjs';
import type { Module } from './module';

type Forward = (...args: unknown[]) => unknown;

/**
 * Runs `fn` with the outputs of the modules at `paths` (paths relative to `root`, e.g. 'model.visual.blocks.0')
 * recorded. A module called more than once keeps its first output, as the reference's hooks do.
 * Returned tensors are owned by the caller.
 */
export function captureOutputs<T>(root: Module, paths: string[], fn: () => T): { result: T; outputs: Map<string, tf.Tensor> } {
  const modules = root.namedModules();
  const outputs = new Map<string, tf.Tensor>();
  const restore: Array<() => void> = [];
  for (const p of paths) {
    const m = modules.get(p) as (Module & { forward?: Forward }) | undefined;
    if (!m || typeof m.forward !== 'function') throw new Error(`no module with a forward at '${p}'`);
    const original = m.forward;
    const wrapped: Forward = (...args) => {
      const out = original.apply(m, args);
      const first = Array.isArray(out) ? out[0] : out;
      if (!outputs.has(p) && first instanceof tf.Tensor) outputs.set(p, tf.keep(tf.clone(first)));
      return out;
    };
    Object.defineProperty(m, 'forward', { value: wrapped, configurable: true, writable: true });
    restore.push(() => delete (m as { forward?: Forward }).forward);
  }
  try {
    return { result: fn(), outputs };
  } finally {
    for (const r of restore) r();
  }
}

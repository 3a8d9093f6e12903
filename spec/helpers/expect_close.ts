// expectClose: compares a tensor with a reference and, on failure, prints the label, the max abs diff and the
// first values side by side (as llm.c's check_tensor). The *Async variants read tensors with `await t.data()`, the only
// read webgpu in Node has for a tensor a GPU kernel produced; the sync ones suit host data and the wasm/cpu backends.
import * as tf from '@tensorflow/tfjs';
import type { HostTensor } from '../../lib/safetensors';

type Arrayish = tf.Tensor | HostTensor | ArrayLike<number>;

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  label?: string;
}

interface Values {
  data: ArrayLike<number>;
  shape?: number[];
}

function values(x: Arrayish): Values {
  if (x instanceof tf.Tensor) return { data: x.dataSync() as ArrayLike<number>, shape: x.shape };
  if ('data' in x && 'shape' in x) return { data: x.data as ArrayLike<number>, shape: x.shape };
  return { data: x };
}

async function valuesAsync(x: Arrayish): Promise<Values> {
  return x instanceof tf.Tensor ? { data: (await x.data()) as ArrayLike<number>, shape: x.shape } : values(x);
}

export interface Diff {
  maxAbs: number;
  maxRel: number;
  worst: number;
  bad: number;
}

export function diff(a: ArrayLike<number>, e: ArrayLike<number>, atol: number, rtol: number): Diff {
  let maxAbs = 0, maxRel = 0, worst = -1, bad = 0;
  for (let i = 0; i < e.length; i++) {
    const d = Math.abs(a[i]! - e[i]!);
    const r = d / Math.max(Math.abs(e[i]!), 1e-12);
    const isBad = !(d <= atol + rtol * Math.abs(e[i]!));
    if (isBad) bad++;
    if (d > maxAbs || Number.isNaN(d)) {
      maxAbs = Number.isNaN(d) ? Infinity : d;
      worst = i;
    }
    if (r > maxRel) maxRel = r;
  }
  return { maxAbs, maxRel, worst, bad };
}

export function expectClose(actual: Arrayish, expected: Arrayish, opts: CloseOptions = {}): Diff {
  return checkClose(values(actual), values(expected), opts);
}

export async function expectCloseAsync(actual: Arrayish, expected: Arrayish, opts: CloseOptions = {}): Promise<Diff> {
  return checkClose(await valuesAsync(actual), await valuesAsync(expected), opts);
}

function checkClose(a: Values, e: Values, opts: CloseOptions): Diff {
  const atol = opts.atol ?? 1e-4, rtol = opts.rtol ?? 0;
  const label = opts.label ?? 'tensor';
  if (a.shape && e.shape && !tf.util.arraysEqual(a.shape, e.shape)) {
    throw new Error(`${label}: shape ${JSON.stringify(a.shape)} != expected ${JSON.stringify(e.shape)}`);
  }
  if (a.data.length !== e.data.length) throw new Error(`${label}: ${a.data.length} values != expected ${e.data.length}`);
  const d = diff(a.data, e.data, atol, rtol);
  if (d.bad > 0) {
    const lines = [`${label}: ${d.bad}/${e.data.length} values off; max abs diff ${d.maxAbs.toExponential(3)} at ${d.worst} (atol ${atol}, rtol ${rtol})`];
    const n = Math.min(5, e.data.length);
    for (let i = 0; i < n; i++) {
      const ok = Math.abs(a.data[i]! - e.data[i]!) <= atol + rtol * Math.abs(e.data[i]!);
      lines.push(`  [${i}] ${ok ? 'OK    ' : 'NOT OK'} ours ${a.data[i]} ref ${e.data[i]}`);
    }
    if (d.worst >= n) lines.push(`  [${d.worst}] NOT OK ours ${a.data[d.worst]} ref ${e.data[d.worst]}`);
    throw new Error(lines.join('\n'));
  }
  return d;
}

/** Exact equality of integer data (token ids, positions, grids), with the first mismatch in the message. */
export function expectEqualInts(actual: Arrayish, expected: Arrayish, label = 'ints'): void {
  checkEqualInts(values(actual), values(expected), label);
}

export async function expectEqualIntsAsync(actual: Arrayish, expected: Arrayish, label = 'ints'): Promise<void> {
  checkEqualInts(await valuesAsync(actual), await valuesAsync(expected), label);
}

function checkEqualInts(a: Values, e: Values, label: string): void {
  if (a.data.length !== e.data.length) throw new Error(`${label}: ${a.data.length} values != expected ${e.data.length}`);
  for (let i = 0; i < e.data.length; i++) {
    if (a.data[i] !== e.data[i]) {
      throw new Error(`${label}: first mismatch at ${i}: ours ${a.data[i]} ref ${e.data[i]}\n  ours ${Array.from(a.data).slice(Math.max(0, i - 4), i + 6)}\n  ref  ${Array.from(e.data).slice(Math.max(0, i - 4), i + 6)}`);
    }
  }
}

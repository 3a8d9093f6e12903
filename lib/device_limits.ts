// Per-tensor size limits of the active device, and weights split by rows to fit them. On WebGPU a tensor is one
// GPU buffer, bound whole to every kernel that reads or writes it, so no tensor may be larger than the device's
// maxStorageBufferBindingSize (128 MiB on lavapipe) nor its maxBufferSize. Over that, tfjs-backend-webgpu 4.22
// checks nothing: Dawn rejects the bind group, and the process dies at the next kernel (exit 139). lib/webgpu.ts
// sets the limits when it opens a device; without them (every other backend) nothing here acts.
// No import of tfjs-backend-webgpu here: layers/ import this file on every backend.
import * as tf from '@tensorflow/tfjs';

export interface DeviceLimits {
  /** the tfjs backend these limits belong to */
  backend: string;
  /** the adapter, for messages ('software renderer lavapipe', 'NVIDIA H100 ...') */
  device: string;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

let limits: DeviceLimits | undefined;
let testCap: number | undefined;

export function setDeviceLimits(l: DeviceLimits | undefined): void {
  limits = l;
  releaseRowChunks();
}

/** The limits set by the backend in use (lib/webgpu.ts), or undefined. */
export function deviceLimits(): DeviceLimits | undefined {
  return limits;
}

/** Lowers the binding limit (specs only: a tiny model then exercises the split and the refusals); undefined restores it. */
export function capBindingSizeForTests(bytes: number | undefined): void {
  testCap = bytes;
  releaseRowChunks();
}

/** The active device's binding limit in bytes, or undefined where the active backend has none. */
export function bindingLimit(): number | undefined {
  if (!limits || tf.getBackend() !== limits.backend) return undefined;
  const l = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  return testCap === undefined ? l : Math.min(l, testCap);
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** What a tensor of `shape` (float32/int32: 4 bytes an element) is over, in one line; undefined when it fits. */
export function overLimit(what: string, shape: readonly number[], dtype = 'float32'): string | undefined {
  const limit = bindingLimit();
  if (limit === undefined) return undefined;
  const bytes = shape.reduce((a, b) => a * b, 1) * (dtype === 'complex64' ? 8 : 4);
  if (bytes <= limit) return undefined;
  return `${what} ${dtype} [${shape.join(', ')}] is ${formatBytes(bytes)}, over ${limits!.device}'s ${limitName()} of ${formatBytes(limit)}`;
}

function limitName(): string {
  if (testCap !== undefined && testCap < Math.min(limits!.maxStorageBufferBindingSize, limits!.maxBufferSize)) return 'binding size capped for a test';
  return limits!.maxStorageBufferBindingSize <= limits!.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
}

export class DeviceLimitError extends Error {
  override name = 'DeviceLimitError';
}

/** tfjs-backend-wasm 4.22 is a wasm32 build whose memory grows to at most 4 GiB (its glue's getHeapMax). */
export const WASM_HEAP_BYTES = 2 ** 32;

/**
 * On wasm, refuses a model whose float32 weights alone exceed the heap, before anything is read: without this the
 * load ends in emscripten's `Aborted()` and "memory access out of bounds" several GiB in.
 */
export function assertFitsWasmHeap(params: Map<string, { shape: number[] }>, backend = tf.getBackend()): void {
  if (backend !== 'wasm') return;
  let bytes = 0;
  for (const p of params.values()) bytes += 4 * p.shape.reduce((a, b) => a * b, 1);
  if (bytes > WASM_HEAP_BYTES) {
    throw new DeviceLimitError(`cannot load on wasm: the float32 weights are ${formatBytes(bytes)}, over the wasm heap's ${formatBytes(WASM_HEAP_BYTES)}; use the native backend (npx glm46v setup, GLM46V_BACKEND=tensorflow)`);
  }
}

/** Parameters whose forward can read them in row chunks (Linear and Embedding weights: [rows, cols]). */
const rowSplittable = new WeakSet<object>();

export function markRowSplittable(param: object): void {
  rowSplittable.add(param);
}

/**
 * Refuses, before anything is uploaded, a model with a parameter that no binding can hold and no split can fix:
 * over the limit and not a Linear/Embedding weight, or one of whose rows alone is over it. Lists the first such keys.
 */
export function assertParametersFit(params: Map<string, { shape: number[] }>): void {
  assertFitsWasmHeap(params);
  const bad: string[] = [];
  for (const [key, p] of params) {
    const whole = overLimit(key, p.shape);
    if (!whole) continue;
    if (rowSplittable.has(p) && p.shape.length === 2 && !overLimit(key, p.shape.slice(1))) continue;
    bad.push(`${whole}, and ${rowSplittable.has(p) ? 'even one row of it is too large' : 'it cannot be split'}`);
  }
  if (bad.length) throw new DeviceLimitError(`cannot load on ${tf.getBackend()}: ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? `; ... and ${bad.length - 5} more` : ''}`);
}

interface Chunked {
  source: tf.Tensor;
  dataId: object;
  chunks: tf.Tensor2D[];
  rows: number;
}

const chunked = new Map<tf.Tensor, Chunked>();
const warned = new Set<string>();

/** Disposes the chunks of weights since disposed or reassigned (all of them with `all`). */
export function releaseRowChunks(all = true): void {
  for (const [k, c] of chunked) {
    if (all || c.source.isDisposed || c.source.dataId !== c.dataId) {
      tf.dispose(c.chunks);
      chunked.delete(k);
    }
  }
}

/**
 * The 2-D weight `w` [R, C] as row chunks [r, C] that each fit one binding, or undefined when `w` fits whole (always
 * off WebGPU). The chunks are made from the weight's host copy, which a tensor too large to bind still has (tfjs
 * uploads a tensor on first use), so the whole weight never reaches the GPU; they are kept until `w` is disposed
 * or reassigned. A weight read in chunks gets no gradient (its gradient would be as large): training it says so once.
 */
export function rowChunks(w: tf.Tensor, what: string): { chunks: tf.Tensor2D[]; rows: number } | undefined {
  const limit = bindingLimit();
  if (limit === undefined || !overLimit(what, w.shape)) return undefined;
  releaseRowChunks(false);
  const hit = chunked.get(w);
  if (hit) return hit;
  const [R, C] = w.shape as [number, number];
  const rows = Math.floor(limit / (4 * C));
  if (w.shape.length !== 2 || rows < 1) throw new DeviceLimitError(`${overLimit(what, w.shape)}, and even one row of it is too large`);
  // the backend's store of tensor data: webgpu's tensorMap, cpu's data (values stay on the host until first use)
  const b = tf.backend() as unknown as Record<'tensorMap' | 'data', { get(id: object): { values?: Float32Array | null } } | undefined>;
  const data = (b.tensorMap ?? b.data)?.get(w.dataId) ?? {};
  const values = data.values;
  if (!values) throw new DeviceLimitError(`${overLimit(what, w.shape)}, and it is already on the device (made by a kernel), so it cannot be split`);
  const chunks: tf.Tensor2D[] = [];
  for (let r = 0; r < R; r += rows) {
    const n = Math.min(rows, R - r);
    chunks.push(tf.keep(tf.tensor2d(values.subarray(r * C, (r + n) * C), [n, C])));
  }
  const entry = { source: w, dataId: w.dataId, chunks, rows };
  chunked.set(w, entry);
  if (!warned.has(what)) {
    warned.add(what);
    console.warn(`glm46v: ${overLimit(what, w.shape)}: read in ${chunks.length} row chunks of ${rows} rows (no gradient reaches it)`);
  }
  return entry;
}

// BatchMatMul and _FusedMatMul for tfjs-backend-wasm 4.22, routed to XNNPACK for every form (tfjs_notes.md §3, A.3).
// The stock C++ kernel uses XNNPACK only for untransposed operands with batch 1 and otherwise runs a scalar loop
// (~2 GFLOP/s). Here each product becomes untransposed batch-1 calls of that same C++ function: transposes are
// materialised (or A·Bᵀ = (B·Aᵀ)ᵀ when B is the big operand), a B shared by all batches takes A's batches as rows,
// and other batches run one call each on views into the operands and the output (no slice or concat copies).
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type Info = tf.TensorInfo;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap };
type StockArgs = Parameters<tf.KernelFunc>[0];

/** The C entry `_FusedMatMul` (batch_mat_mul_impl.cc), which BatchMatMul shares with activation 'linear'. */
type CMatMul = (
  aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, activation: number, biasId: number, preluId: number,
  leakyreluAlpha: number, outId: number,
) => void;

/** Enum FusableActivation of the wasm backend (cc/fusable_activations.h). */
const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1, relu6: 2, prelu: 3, leakyrelu: 4, sigmoid: 5, elu: 6 };

interface Epilogue { activation: number; biasId: number; preluId: number; alpha: number }
const PLAIN: Epilogue = { activation: 0, biasId: 0, preluId: 0, alpha: 0 };

const cFns = new WeakMap<BackendWasm, CMatMul>();
function cMatMul(backend: BackendWasm): CMatMul {
  let fn = cFns.get(backend);
  if (!fn) {
    const n = 'number', arr = 'array';
    const wasm = backend.wasm as unknown as { cwrap(name: string, ret: null, args: string[]): CMatMul };
    fn = wasm.cwrap('_FusedMatMul', null, [n, arr, n, n, arr, n, n, n, n, n, n, n, n]);
    cFns.set(backend, fn);
  }
  return fn;
}

const shapeBytes = (shape: number[]) => new Uint8Array(new Int32Array(shape).buffer);
const prod = (s: number[]) => s.reduce((x, y) => x * y, 1);

/** [K, N] each caller's tensor was first packed as (see Scratch.weights); weak, so it ends with the data. */
const packedAs = new WeakMap<object, string>();

/** Allocations and views made during one kernel call, all released before it returns. */
class Scratch {
  private readonly temps: Info[] = [];
  private readonly views: Info[] = [];
  constructor(readonly backend: BackendWasm) {}

  id(t: Info): number { return this.backend.dataIdMap.get(t.dataId).id; }
  offset(t: Info): number { return this.backend.dataIdMap.get(t.dataId).memoryOffset; }

  /** Swaps the last two axes (perm may be given for other moves); the copy is freed with the scratch. */
  transpose(x: Info, perm?: number[]): Info {
    const r = x.shape.length;
    const p = perm ?? [...Array(r).keys()].map((i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
    const out = tf.getKernel('Transpose', 'wasm')!.kernelFunc({ inputs: { x }, backend: this.backend, attrs: { perm: p } }) as Info;
    this.temps.push(out);
    return out;
  }

  /** A tensor id over `size` floats at byte `offset` of existing memory: registered only, never freed itself. */
  view(offset: number, size: number): number {
    const v = this.backend.makeOutput([size], 'float32', offset);
    this.views.push(v);
    return this.id(v);
  }

  /** A fresh [shape] output freed with the scratch. */
  alloc(shape: number[]): Info {
    const t = this.backend.makeOutput(shape, 'float32');
    this.temps.push(t);
    return t;
  }

  /**
   * The id under which `w` is packed as XNNPACK weights read as [K, N]. The C++ cache is keyed by tensor id
   * alone, so data shared by a reshape and read with other dims would reuse a stale packing (a silent wrong
   * result in the stock kernel too): such a second reading gets a fresh view id, packed for this call only.
   */
  weights(w: Info, K: number, N: number): number {
    if (this.temps.includes(w)) return this.id(w);
    const dims = `${K}x${N}`;
    const seen = packedAs.get(w.dataId);
    if (seen === undefined) packedAs.set(w.dataId, dims);
    else if (seen !== dims) return this.view(this.offset(w), K * N);
    return this.id(w);
  }

  release(): void {
    // Unregistering a view also drops the XNNPACK operator packed for it (a disposal callback in backend.cc).
    for (const v of this.views) {
      this.backend.wasm.tfjs.disposeData(this.id(v));
      this.backend.dataIdMap.delete(v.dataId);
    }
    for (const t of this.temps) this.backend.disposeData(t.dataId);
  }
}

/** out[rows, N] = a[rows, K] · b[K, N], both contiguous, through XNNPACK. */
function gemm(s: Scratch, aId: number, rows: number, K: number, bId: number, N: number, outId: number, e: Epilogue): void {
  const call = cMatMul(s.backend);
  call(aId, shapeBytes([1, rows, K]), 3, bId, shapeBytes([1, K, N]), 3, false, false, e.activation, e.biasId, e.preluId, e.alpha, outId);
}

/** Index into a batch of shape `dims` (right-aligned against the output batch) for output batch `o`. */
function batchIndex(o: number, outBatch: number[], dims: number[]): number {
  let idx = 0, stride = 1, rem = o;
  for (let d = outBatch.length - 1; d >= 0; d--) {
    const od = outBatch[d]!;
    const i = rem % od;
    rem = Math.floor(rem / od);
    const k = d - (outBatch.length - dims.length);
    if (k < 0) continue;
    const size = dims[k]!;
    if (size !== 1) idx += i * stride;
    stride *= size;
  }
  return idx;
}

/**
 * a·b with the given transposes and epilogue on XNNPACK; null where the stock kernel should answer
 * (non-float32, mismatched or empty dims: it throws or handles those itself).
 */
function matMulXnn(a: Info, b: Info, tA: boolean, tB: boolean, e: Epilogue, backend: BackendWasm): Info | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const ra = a.shape.length, rb = b.shape.length;
  const M = tA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = tA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = tB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = tB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (K !== Kb) return null;
  const bA = a.shape.slice(0, -2), bB = b.shape.slice(0, -2);
  const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(bA, bB);
  const nA = prod(bA), nB = prod(bB), nOut = prod(outBatch);
  if (M * K * N * nOut === 0) return null;
  const outShape = [...outBatch, M, N];
  const s = new Scratch(backend);
  try {
    if (nB === 1) {
      const rows = nA * M;
      const swapCost = (tA && nA === 1 ? 0 : 2 * rows * K) + rows * N;
      const directCost = (tA ? rows * K : 0) + (tB ? 2 * K * N : 0);
      if (tB && e === PLAIN && swapCost < directCost) return swapped(s, a, b, tA, rows, K, N, nA, M, outShape);
      const a2 = tA ? s.transpose(a) : a;
      const b2 = tB ? s.transpose(b) : b;
      const out = backend.makeOutput(outShape, 'float32');
      gemm(s, s.id(a2), rows, K, s.weights(b2, K, N), N, s.id(out), e);
      return out;
    }
    if (!tA && !tB && e === PLAIN && M <= FEW_ROWS) {
      // as (bᵀ·aᵀ)ᵀ: each bᵀ batch is read as gemm rows, only the small aᵀ is packed (see FEW_ROWS)
      const p = s.alloc([...outBatch, N, M]);
      perBatch(s, s.transpose(b), bB, N, s.transpose(a), bA, M, K, p, outBatch, PLAIN);
      const perm = [...outBatch.keys(), outBatch.length + 1, outBatch.length];
      return tf.getKernel('Transpose', 'wasm')!.kernelFunc({ inputs: { x: p }, backend, attrs: { perm } }) as Info;
    }
    const out = backend.makeOutput(outShape, 'float32');
    perBatch(s, tA ? s.transpose(a) : a, bA, M, tB ? s.transpose(b) : b, bB, N, K, out, outBatch, e);
    return out;
  } finally {
    s.release();
  }
}

/**
 * Batched products with at most this many rows per batch (decode attention's probabilities · values: one query per
 * head) run as (bᵀ·aᵀ)ᵀ: XNNPACK packs its weights operand on every call, and packing each [K, N] batch of b cost
 * more than a transpose of all of b that is then read as plain rows ([4, 4, 1024] x [4, 1024, 64]: 2.9 -> 1.3 ms).
 */
const FEW_ROWS = 8;

/** out[o] = a[o][M, K] · b[o][K, N] for each output batch o, on views into contiguous a, b and out. */
function perBatch(s: Scratch, a: Info, bA: number[], M: number, b: Info, bB: number[], N: number, K: number, out: Info, outBatch: number[], e: Epilogue): void {
  const aOff = s.offset(a), bOff = s.offset(b), oOff = s.offset(out);
  const nA = prod(bA), nB = prod(bB), nOut = prod(outBatch);
  const aIds = nA === 1 ? [s.id(a)] : [...Array(nA).keys()].map((i) => s.view(aOff + 4 * i * M * K, M * K));
  const bIds = [...Array(nB).keys()].map((i) => s.view(bOff + 4 * i * K * N, K * N));
  for (let o = 0; o < nOut; o++) {
    const aId = aIds[batchIndex(o, outBatch, bA)]!, bId = bIds[batchIndex(o, outBatch, bB)]!;
    gemm(s, aId, M, K, bId, N, s.view(oOff + 4 * o * M * N, M * N), e);
  }
}

/** a·bᵀ as (b·aᵀ)ᵀ for a B shared by all batches: b [N, K] is read as rows, only aᵀ and the output move. */
function swapped(s: Scratch, a: Info, b: Info, tA: boolean, rows: number, K: number, N: number, nA: number, M: number, outShape: number[]): Info {
  let aT: Info;
  if (!tA) aT = s.transpose({ ...a, shape: [rows, K] }, [1, 0]); // [K, rows]
  else if (nA === 1) aT = a; // already [K, M]
  else aT = s.transpose({ ...a, shape: [nA, K, M] }, [1, 0, 2]); // [K, nA, M]
  const p = s.alloc([N, rows]);
  gemm(s, s.id(b), N, K, s.weights(aT, K, rows), rows, s.id(p), PLAIN);
  const out = tf.getKernel('Transpose', 'wasm')!.kernelFunc({ inputs: { x: p }, backend: s.backend, attrs: { perm: [1, 0] } }) as Info;
  return { ...out, shape: outShape };
}

let stockBatchMatMul: tf.KernelFunc | undefined;
let stockFusedMatMul: tf.KernelFunc | undefined;

/** Calls answered by the stock kernels since start-up (specs check that the forms they cover never fall back). */
export const wasmMatMulFallbacks = { count: 0 };
function stock(fn: tf.KernelFunc | undefined, args: KernelArgs): Info {
  wasmMatMulFallbacks.count++;
  return fn!(args as StockArgs) as Info;
}

function batchMatMul(args: KernelArgs): Info {
  const { a, b } = args.inputs as { a: Info; b: Info };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  return matMulXnn(a, b, transposeA, transposeB, PLAIN, args.backend) ?? stock(stockBatchMatMul, args);
}

function fusedMatMul(args: KernelArgs): Info {
  const { a, b, bias, preluActivationWeights: prelu } = args.inputs as { a: Info; b: Info; bias?: Info; preluActivationWeights?: Info };
  const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as {
    transposeA: boolean; transposeB: boolean; activation: string; leakyreluAlpha?: number;
  };
  const N = transposeB ? b.shape[b.shape.length - 2]! : b.shape[b.shape.length - 1]!;
  const code = ACTIVATIONS[activation];
  // The epilogue runs per call on an [rows, N] block, so bias and PReLU weights must be per-column vectors.
  const perColumn = (t?: Info) => t == null || (t.shape.length === 1 && t.shape[0] === N && t.dtype === 'float32');
  if (code === undefined || !perColumn(bias) || !perColumn(prelu)) return stock(stockFusedMatMul, args);
  const id = (t?: Info) => (t == null ? 0 : args.backend.dataIdMap.get(t.dataId).id);
  const e: Epilogue = { activation: code, biasId: id(bias), preluId: id(prelu), alpha: leakyreluAlpha ?? 0 };
  return matMulXnn(a, b, transposeA, transposeB, e, args.backend) ?? stock(stockFusedMatMul, args);
}

/** Exported so specs can tell the override from the stock kernel. */
export const wasmBatchMatMulKernel = batchMatMul as unknown as tf.KernelFunc;
export const wasmFusedMatMulKernel = fusedMatMul as unknown as tf.KernelFunc;

/** Replaces the wasm BatchMatMul and _FusedMatMul kernels; the stock ones stay the fallback. Call once. */
export function installWasmMatMul(): void {
  for (const [name, func] of [['BatchMatMul', wasmBatchMatMulKernel], ['_FusedMatMul', wasmFusedMatMulKernel]] as const) {
    const stock = tf.getKernel(name, 'wasm');
    if (!stock) throw new Error(`installWasmMatMul: no stock '${name}' kernel registered for wasm`);
    if (stock.kernelFunc === func) continue;
    if (name === 'BatchMatMul') stockBatchMatMul = stock.kernelFunc;
    else stockFusedMatMul = stock.kernelFunc;
    tf.unregisterKernel(name, 'wasm');
    // Keep the stock setupFunc: it binds the C function the fallback uses, also for a backend made later.
    tf.registerKernel({ ...stock, kernelFunc: func });
  }
}

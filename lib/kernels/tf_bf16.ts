// bfloat16 checkpoint bytes -> a float32 tensor on the native backend, converted natively (exact: bf16 -> f32 only
// appends 16 zero bits) instead of in JavaScript: the host then holds the raw bytes only, not a float32 copy per
// tensor, and the conversion runs on native threads. A load of the benchmark model spent ~75% of its time in the
// JavaScript loop (docs/benchmark.md). On the CPU the package's own op (lib/native/fused_ops.c: Glm46vBf16Rows)
// widens each chunk straight into the weight's buffer; elsewhere (tfjs-node-gpu) TensorFlow's Bitcast, Cast and
// InplaceUpdate do it in three passes.
import * as tf from '@tensorflow/tfjs';
import { hugePages } from '../native/load';
import { canWriteBf16Rows } from './tf_fused';
import { NodeBackend, TfTensorMeta, boolAttr, nodeBackend, reshapeView, typeAttr as type, withVector } from './tf_binding';

const TF_BFLOAT16 = 14; // TF_DataType

/** Tensors over this many bf16 bytes are converted in row chunks of about this size (see tfBf16Tensor). */
export const CHUNK_BYTES = 16 << 20;

/**
 * A bf16 tensor of `shape` -> a float32 tf.Tensor, or undefined where this path does not apply (another backend, an
 * odd element count, unaligned bytes): the caller converts on the host then. `read(offset, length)` returns that
 * many of the tensor's bytes (little-endian, as safetensors stores them); the caller may reuse them after each call.
 *
 * Up to CHUNK_BYTES the bytes go to TensorFlow whole. A larger matrix is made with `Empty` and filled chunk of rows
 * by chunk of rows, each written in place (see `filled`). A load then needs one chunk beside the float32 weights, not
 * the whole tensor's bytes twice more (the host's read and TensorFlow's copy of it): GLM-4.6V-Flash's embedding and
 * lm_head are 1.2 GB of bf16 each.
 */
export function tfBf16Tensor(shape: number[], read: (offset: number, length: number) => Uint8Array, chunkBytes = CHUNK_BYTES): tf.Tensor | undefined {
  const n = shape.reduce((a, b) => a * b, 1);
  if (tf.getBackend() !== 'tensorflow' || n % 2 !== 0 || n === 0) return undefined;
  const be = nodeBackend(), fused = canWriteBf16Rows();
  const rows = shape.length >= 2 ? shape[0]! : 1, cols = n / rows;
  const per = rowsPerChunk(rows, cols, chunkBytes);
  if (per === undefined) {
    const bytes = read(0, 2 * n);
    if (bytes.byteOffset % 4 !== 0) return undefined;
    return fused ? filled(be, 1, n, shape, chunkBytes, () => bytes) : be.createOutputTensor(reshape(be, toFloat32(be, bytes), shape));
  }
  const e = per * cols;
  return filled(be, rows / per, e, shape, chunkBytes, (c) => {
    const bytes = read(2 * c * e, 2 * e);
    if (bytes.byteOffset % 4 !== 0) throw new Error(`tfBf16Tensor: read returned unaligned bytes (offset ${bytes.byteOffset})`);
    return bytes;
  });
}

/**
 * A float32 tensor of `shape` made with `Empty` as [chunks, e] and filled row by row from the bf16 bytes `chunk(c)`
 * gives (4-byte aligned), each written in place: by the package's op on the CPU, else converted by TensorFlow and
 * written with `InplaceUpdate` (inplace_ops.cc: "This creates an alias intentionally"; nothing else holds the tensor
 * yet). Each is one row of InplaceUpdate so that the kernel spreads it over the thread pool (a row per weight row is
 * ~4x slower at GLM's widths).
 */
function filled(be: NodeBackend, chunks: number, e: number, shape: number[], chunkBytes: number, chunk: (c: number) => Uint8Array): tf.Tensor {
  const b = be.binding, fused = canWriteBf16Rows();
  // in huge pages where the kernel has them (lib/native/load.ts): `Empty` maps the buffer without touching it
  const huge = hugePages();
  huge?.mark();
  const out = withVector(be, [chunks, e], (s) => b.executeOp('Empty', [type(b, 'dtype', b.TF_FLOAT), boolAttr(b, 'init', false)], [s], 1)[0]!.id);
  huge?.advise(chunkBytes);
  let done = false;
  try {
    for (let c = 0; c < chunks; c++) {
      const bytes = chunk(c);
      const ids: number[] = [];
      try {
        if (fused) {
          ids.push(b.createTensor([e / 2], b.TF_INT32, new Int32Array(bytes.buffer, bytes.byteOffset, e / 2)), b.createTensor([1], b.TF_FLOAT, Float32Array.of(c)));
          b.executeOp('Glm46vBf16Rows', [], [out, ids[0]!, ids[1]!], 0); // writes into `out`
        } else {
          ids.push(reshape(be, toFloat32(be, bytes), [1, e]).id, b.createTensor([1], b.TF_INT32, Int32Array.of(c)));
          ids.push(b.executeOp('InplaceUpdate', [type(b, 'T', b.TF_FLOAT)], [out, ids[1]!, ids[0]!], 1)[0]!.id); // an alias of `out`
        }
      } finally {
        for (const id of ids) b.deleteTensor(id);
      }
    }
    done = true;
    return be.createOutputTensor(reshape(be, out, shape)); // frees `out`
  } finally {
    if (!done) b.deleteTensor(out);
  }
}

/**
 * Rows per chunk for a [rows, cols] matrix: the most that divides `rows` and fits `chunkBytes` of bf16 (the chunks
 * must be equal: each is one row of a [chunks, per * cols] view). Undefined where the tensor is converted whole: it
 * fits one chunk, it is not a matrix of even rows, or no divisor gives chunks of at least 1/16 of `chunkBytes`.
 */
export function rowsPerChunk(rows: number, cols: number, chunkBytes: number): number | undefined {
  const most = Math.floor(chunkBytes / (2 * cols));
  if (rows <= most || cols % 2 !== 0) return undefined;
  for (let per = most; per >= 1 && 2 * per * cols * 16 >= chunkBytes; per--) if (rows % per === 0) return per;
  return undefined;
}

/** bf16 bytes -> a flat float32 TensorFlow tensor (its id): the bytes as int32 pairs, Bitcast, Cast. */
function toFloat32(be: NodeBackend, bytes: Uint8Array): number {
  const b = be.binding, n = bytes.byteLength / 2;
  const ids: number[] = [];
  try {
    ids.push(b.createTensor([n / 2], b.TF_INT32, new Int32Array(bytes.buffer, bytes.byteOffset, n / 2)));
    ids.push(b.executeOp('Bitcast', [type(b, 'T', b.TF_INT32), type(b, 'type', TF_BFLOAT16)], [ids[0]!], 1)[0]!.id); // [n/2, 2]
    const cast = [type(b, 'SrcT', TF_BFLOAT16), type(b, 'DstT', b.TF_FLOAT), boolAttr(b, 'Truncate', false)];
    return b.executeOp('Cast', cast, [ids[1]!], 1)[0]!.id; // [n/2, 2]
  } finally {
    for (const id of ids) b.deleteTensor(id);
  }
}

/** A view of tensor `id` with `shape` (its metadata); `id` itself is freed. */
function reshape(be: NodeBackend, id: number, shape: number[]): TfTensorMeta {
  try {
    return reshapeView(be, id, shape);
  } finally {
    be.binding.deleteTensor(id);
  }
}

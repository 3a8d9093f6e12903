// In-place writes on the native backend, for the preallocated KV cache (lib/kv_cache.ts): TensorFlow's
// `InplaceUpdate` writes rows of its input's own buffer (inplace_ops.cc: "This creates an alias intentionally"), where
// every tfjs op makes a new tensor, so that appending a token to a concatenated cache copies the whole cache. The
// cache owns the buffer it writes into and nothing else holds it between steps (a Reshape's output shares it only
// inside the step that made it).
import * as tf from '@tensorflow/tfjs';
import { nodeBackend, reshapeView, typeAttr } from './tf_binding';
import { writePositionsFused } from './tf_fused';

/** Whether writePositions can run here: the native backend, which has InplaceUpdate. */
export function canWriteInPlace(): boolean {
  return tf.getBackend() === 'tensorflow';
}

/**
 * The row numbers of positions at..at+L-1 of a [B, H, C, D] buffer seen as [B*H*C, D] rows, in the order of x
 * [B, H, L, D] seen as [B*H*L, D] rows.
 */
export function positionRows(B: number, H: number, C: number, L: number, at: number): Int32Array {
  const rows = new Int32Array(B * H * L);
  for (let bh = 0, i = 0; bh < B * H; bh++) for (let l = 0; l < L; l++) rows[i++] = bh * C + at + l;
  return rows;
}

/** Writes x [B, H, L, D] into buf [B, H, C, D] at positions at..at+L-1 (float32), in place. */
export function writePositions(buf: tf.Tensor4D, x: tf.Tensor4D, at: number): void {
  const [B, H, C, D] = buf.shape;
  const L = x.shape[2];
  if (x.shape[0] !== B || x.shape[1] !== H || x.shape[3] !== D || at < 0 || at + L > C || buf.dtype !== 'float32' || x.dtype !== 'float32') {
    throw new Error(`writePositions: cannot write ${x.dtype} ${JSON.stringify(x.shape)} at position ${at} of ${buf.dtype} ${JSON.stringify(buf.shape)}`);
  }
  if (writePositionsFused(buf, x, at)) return; // on the CPU: one op of the package's own
  const be = nodeBackend(), b = be.binding;
  const [bufId, xId] = be.getInputTensorIds([buf, x]) as [number, number];
  const ids: number[] = [];
  try {
    ids.push(reshapeView(be, bufId, [B * H * C, D]).id); // writing into this view writes into buf
    ids.push(reshapeView(be, xId, [B * H * L, D]).id);
    ids.push(b.createTensor([B * H * L], b.TF_INT32, positionRows(B, H, C, L, at)));
    ids.push(b.executeOp('InplaceUpdate', [typeAttr(b, 'T', b.TF_FLOAT)], [ids[0]!, ids[2]!, ids[1]!], 1)[0]!.id);
  } finally {
    for (const id of ids) b.deleteTensor(id);
  }
}

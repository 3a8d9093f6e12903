// Block-diagonal (per-span) non-causal attention over packed sequences, as Glm4vVisionAttention's non-flash path
// (transformers/models/glm4v/modeling_glm4v.py): the tokens are split by cu_seqlens and each chunk attends to itself.
import * as tf from '@tensorflow/tfjs';
import { softmaxInPlace } from '../../lib/kernels/tf_fused';
import { overQueryBlocks, queryBlockRows } from './query_blocks';

/** Checks that cuSeqlens is 0 = c0 <= c1 <= ... = n, naming the first offending entry. */
export function checkCuSeqlens(cuSeqlens: readonly number[], n: number, who = 'cuSeqlens'): void {
  const bad = (msg: string) => new Error(`${who} ${JSON.stringify(cuSeqlens)}: ${msg}`);
  if (cuSeqlens.length < 2 || cuSeqlens[0] !== 0) throw bad('must start at 0 and hold at least one span');
  for (let i = 1; i < cuSeqlens.length; i++) {
    if (!Number.isInteger(cuSeqlens[i]) || cuSeqlens[i]! < cuSeqlens[i - 1]!) throw bad(`entry ${i} is not an integer >= the one before`);
  }
  if (cuSeqlens[cuSeqlens.length - 1] !== n) throw bad(`must end at the token count ${n}`);
}

/**
 * softmax(q_s k_s^T * scale) v_s for every span s = [cuSeqlens[i], cuSeqlens[i+1]) on its own; spans never mix.
 * q, k, v [N, H, Dh]; cuSeqlens: N-ending cumulative lengths (any number of spans, empty spans allowed).
 * Returns [N, H, Dh]. Built from slice/transpose/matMul/softmax/concat with equal batch dims, so autodiff's gradient
 * is correct (no broadcast batched matMul) and exactly zero across spans.
 */
function blockDiagonalAttention_(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, cuSeqlens: number[], scale: number): tf.Tensor3D {
  tf.util.assert(
    tf.util.arraysEqual(k.shape, q.shape) && tf.util.arraysEqual(v.shape, q.shape),
    () => `blockDiagonalAttention: q ${JSON.stringify(q.shape)}, k ${JSON.stringify(k.shape)}, v ${JSON.stringify(v.shape)} must match`,
  );
  const headsFirst = (x: tf.Tensor3D) => tf.transpose(x, [1, 0, 2]) as tf.Tensor3D; // [H, N, Dh]
  // The scale goes on q (N*Dh products) rather than on the [H, L, L] scores, as in the text attention: a pass over
  // 8 M scores a block fewer at 448 px; exact where the scale is a power of two (head dim 64: 1/8), within an ulp else.
  return blockDiagonalAttentionHeads(tf.mul(headsFirst(q), scale), headsFirst(k), headsFirst(v), cuSeqlens);
}

/**
 * The same attention with q, k, v laid out heads first, [H, N, Dh], and q already scaled (what the package's fused
 * vision op gives). Returns [N, H, Dh].
 */
function blockDiagonalAttentionHeads_(qs: tf.Tensor3D, ks: tf.Tensor3D, vs: tf.Tensor3D, cuSeqlens: number[]): tf.Tensor3D {
  const [H, N, Dh] = qs.shape;
  tf.util.assert(
    tf.util.arraysEqual(ks.shape, qs.shape) && tf.util.arraysEqual(vs.shape, qs.shape),
    () => `blockDiagonalAttention: q ${JSON.stringify(qs.shape)}, k ${JSON.stringify(ks.shape)}, v ${JSON.stringify(vs.shape)} must match`,
  );
  checkCuSeqlens(cuSeqlens, N, 'blockDiagonalAttention: cuSeqlens');
  const outs: tf.Tensor[] = [];
  for (let i = 0; i + 1 < cuSeqlens.length; i++) {
    const start = cuSeqlens[i]!, L = cuSeqlens[i + 1]! - start;
    if (L === 0) continue;
    // one span covering all tokens (a single image) needs no slice, which the wasm backend would copy
    const span = (x: tf.Tensor3D) => (L === N ? x : tf.slice(x, [0, start, 0], [H, L, Dh])); // [H, L, Dh]
    const [q, k, v] = [span(qs), span(ks), span(vs)];
    // [H, rows, Dh]; the softmax at inference on the native CPU backend one op of the package's own, over the scores
    const attend = (qRows: tf.Tensor3D) => {
      const scores = tf.matMul(qRows, k, false, true);
      return tf.matMul(softmaxInPlace(scores, null) ? scores : tf.softmax(scores, -1), v);
    };
    // inference on a large image: the [H, L, L] scores a block of query rows at a time
    const rows = queryBlockRows(L, 4 * H * L);
    const o = rows ? overQueryBlocks(L, rows, 1, (l0, n) => attend(tf.slice(q, [0, l0, 0], [H, n, Dh]))) : attend(q);
    outs.push(tf.transpose(o, [1, 0, 2])); // [L, H, Dh]
  }
  if (outs.length === 0) return tf.zeros([0, H, Dh]);
  return (outs.length === 1 ? outs[0]! : tf.concat(outs, 0)) as tf.Tensor3D;
}

export const blockDiagonalAttention = tf.op({ blockDiagonalAttention_ });
export const blockDiagonalAttentionHeads = tf.op({ blockDiagonalAttentionHeads_ });

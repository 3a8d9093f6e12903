// The rotary update shared by apply_rotary_pos_emb (text) and apply_rotary_pos_emb_vision of
// transformers/models/glm4v/modeling_glm4v.py: x * cos + rotate(x) * sin, with rotate a signed permutation of the
// last axis (rotate_half_llm on interleaved pairs, or rotate_half on the two halves).
import * as tf from '@tensorflow/tfjs';

/** A signed permutation of the last axis as a [Dh, Dh] matrix P (rotate(x) = x @ P) and its transpose. */
export interface Rotation {
  dim: number;
  p: Float32Array;
  pT: Float32Array;
}

const cache = new Map<string, Rotation>();

function rotation(key: string, dim: number, pairs: Array<[number, number]>): Rotation {
  let r = cache.get(key);
  if (!r) {
    const p = new Float32Array(dim * dim), pT = new Float32Array(dim * dim);
    // each pair (a, b) rotates as (x_a, x_b) -> (-x_b, x_a): column a takes -x_b, column b takes x_a
    for (const [a, b] of pairs) {
      p[b * dim + a] = -1;
      p[a * dim + b] = 1;
      pT[a * dim + b] = -1;
      pT[b * dim + a] = 1;
    }
    cache.set(key, (r = { dim, p, pT }));
  }
  return r;
}

/** rotate_half_llm on the first R dims: pairs (2j, 2j+1); dims R.. map to zero (they are not rotated). */
export function interleavedRotation(dim: number, R: number): Rotation {
  return rotation(`interleaved:${dim}:${R}`, dim, Array.from({ length: R / 2 }, (_, j) => [2 * j, 2 * j + 1] as [number, number]));
}

/** rotate_half (NeoX): pairs (i, i + dim/2). */
export function halfRotation(dim: number): Rotation {
  const h = dim / 2;
  return rotation(`half:${dim}`, dim, Array.from({ length: h }, (_, i) => [i, i + h] as [number, number]));
}

/** t [..., Dh] @ m [Dh, Dh], folded to one 2-D product (the wasm fast path; no batched-matMul gradient issue). */
function permute(t: tf.Tensor, m: Float32Array, dim: number): tf.Tensor {
  return tf.reshape(tf.matMul(tf.reshape(t, [-1, dim]), tf.tensor2d(m, [dim, dim])), t.shape);
}

/**
 * x * cos + (x @ P) * sin. x [..., Dh]; cos, sin broadcastable to x (cos 1 and sin 0 on dims that do not rotate).
 * The permutation is one small matMul instead of slices and concats on a size-1 or size-Dh/2 axis (which the wasm
 * backend copies element by element); x @ P is exact (one ±x term per column). The gradient is written out,
 * dx = dy * cos + (dy * sin) @ Pᵀ, so a backward pass keeps only cos and sin, not the activations.
 */
function applyRotation_(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, rot: Rotation): tf.Tensor {
  tf.util.assert(x.shape[x.rank - 1] === rot.dim, () => `applyRotation: x ${JSON.stringify(x.shape)} does not end in ${rot.dim}`);
  // Nothing records gradients (inference): the same forward without customGrad's scope, saves and bookkeeping.
  if (!tf.engine().isTapeOn()) return tf.add(tf.mul(x, cos), tf.mul(permute(x, rot.p, rot.dim), sin));
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xx, c, s, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([c, s]);
    return {
      value: tf.add(tf.mul(xx, c), tf.mul(permute(xx, rot.p, rot.dim), s)),
      // tidy: the engine keeps whatever a gradient function leaves behind until the whole backward pass ends
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [cs, sn] = saved as [tf.Tensor, tf.Tensor];
        return [tf.add(tf.mul(dy, cs), permute(tf.mul(dy, sn), rot.pT, rot.dim)), tf.zerosLike(cs), tf.zerosLike(sn)];
      }),
    };
  });
  return f(x, cos, sin);
}

export const applyRotation = tf.op({ applyRotation_ });

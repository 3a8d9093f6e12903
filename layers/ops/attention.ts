// Scaled-dot-product attention with an additive mask and grouped-query heads, as eager_attention_forward +
// repeat_kv in transformers/models/glm4v/modeling_glm4v.py, without materialising the repeated keys/values.
import * as tf from '@tensorflow/tfjs';
import { decodeAttentionFused, softmaxInPlace } from '../../lib/kernels/tf_fused';
import type { CachedKV } from '../../lib/kv_cache';
import { isCausalMask } from './causal_mask';
import { overQueryBlocks, queryBlockRows } from './query_blocks';

/**
 * The grouped forms of q and k and softmax(q kᵀ * scale + mask) (float32): qg [B*Hkv, G*L, Dh], kg [B*Hkv, S, Dh],
 * probs [B*Hkv, G*L, S]. The G q heads of a kv head are folded into rows, a free reshape since their heads are adjacent.
 */
function probabilities(q: tf.Tensor4D, k: tf.Tensor4D, mask: tf.Tensor4D | tf.Tensor3D | null, scale: number): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] {
  const [B, H, L, Dh] = q.shape;
  const [, Hkv, S] = k.shape;
  const G = H / Hkv;
  // The scale goes on q (L*Dh products) rather than on the [L, S] scores; the tiny configs' 0.25 is exact either way.
  const qg = tf.reshape(tf.mul(q, scale), [B * Hkv, G * L, Dh]);
  const kg = tf.reshape(k, [B * Hkv, S, Dh]);
  // Few queries per kv head (decode): (K qᵀ)ᵀ reads the keys as matMul rows and transposes only the small
  // [S, G*L] result, where q kᵀ would transpose and repack all S keys for every call.
  // On the native backend TF's BatchMatMul takes the transposed keys itself (two fewer kernels per layer, ~1.5 ms a step).
  const qk = G * L <= Dh && tf.getBackend() !== 'tensorflow' ? tf.transpose(tf.matMul(kg, qg, false, true), [0, 2, 1]) : tf.matMul(qg, kg, false, true);
  // The softmax is row by row, so without a mask it runs on the grouped rows as they are (two reshapes fewer); so
  // does a mask [1, 1, S] that is the same for every row (a preallocated cache's free positions).
  if (!mask || mask.rank === 3) return [qg as tf.Tensor3D, kg as tf.Tensor3D, maskedSoftmax(qk, mask) as tf.Tensor3D];
  return [qg as tf.Tensor3D, kg as tf.Tensor3D, tf.reshape(maskedSoftmax(tf.reshape(qk, [B, H, L, S]), mask), [B * Hkv, G * L, S])];
}

/**
 * softmax(scores + mask) along the last axis; at inference on the native CPU backend one op of the package's own,
 * written over the scores (a fresh product that nothing else reads).
 */
const maskedSoftmax = (scores: tf.Tensor, mask: tf.Tensor | null): tf.Tensor =>
  softmaxInPlace(scores, mask) ? scores : tf.softmax(mask ? tf.add(scores, mask) : scores);

function checkShapes(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, vShape: number[], mask: tf.Tensor4D | null): void {
  const [B, H, L, Dh] = q.shape;
  const [, Hkv, S] = k.shape;
  tf.util.assert(
    k.shape[0] === B && H % Hkv === 0 && k.shape[3] === Dh && tf.util.arraysEqual(v.shape, vShape),
    () => `attention: q ${JSON.stringify(q.shape)}, k ${JSON.stringify(k.shape)}, v ${JSON.stringify(v.shape)} do not fit`,
  );
  tf.util.assert(
    mask === null || (mask.shape[1] === 1 && mask.shape[2] === L && mask.shape[3] === S && (mask.shape[0] === B || mask.shape[0] === 1)),
    () => `attention: mask ${JSON.stringify(mask?.shape)} does not fit [${B}, 1, ${L}, ${S}]`,
  );
}

/**
 * softmax(q k^T * scale + mask) v, with the softmax in float32.
 * q [B, H, L, Dh]; k, v [B, Hkv, S, Dh] with H = Hkv * G; mask [B or 1, 1, L, S] additive (0 keeps, finfo.min drops)
 * or null. Kv head g serves q heads g*G .. (g+1)*G - 1 (repeat_kv's order).
 * Returns [B, L, H, Dh], the layout HF's attention gives back before reshape(B, L, H*Dh).
 *
 * The G q heads of a kv head are folded into rows ([B*Hkv, G*L, Dh], a free reshape since their heads are adjacent),
 * so every matMul has equal batch dims: tfjs's batchMatMul gradient breaks on broadcast batch dims.
 */
function scaledDotProductAttention_(
  q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D | null, scale: number,
): tf.Tensor4D {
  const [B, H, L, Dh] = q.shape;
  const [, Hkv, S] = k.shape;
  checkShapes(q, k, v, k.shape, mask);
  const G = H / Hkv;
  // inference on a long or causal sequence: the scores a block of queries at a time; a causal block reads the keys up
  // to its last query only (S - L of them come before query 0)
  const causal = isCausalMask(mask);
  const rows = queryBlockRows(L, 4 * B * H * S, causal);
  if (rows) {
    return overQueryBlocks(L, rows, 1, (l0, n) => {
      const end = causal ? S - L + l0 + n : S;
      return scaledDotProductAttention_(queryRows(q, l0, n), keyRows(k, 2, end), keyRows(v, 2, end), mask && queryRows(mask, l0, n, end), scale);
    });
  }
  // The mask is a constant of the forward: it is read there only (the softmax gradient needs just the probabilities).
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [q4, k4, v4, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    const [qg, kg, probs] = probabilities(q4, k4, mask, scale);
    const vg = tf.reshape(v4, [B * Hkv, S, Dh]);
    save([qg, kg, vg, probs]);
    const out = tf.reshape(tf.matMul(probs, vg), [B, H, L, Dh]);
    return {
      value: tf.transpose(out, [0, 2, 1, 3]) as tf.Tensor4D,
      // Written out so a backward pass keeps q, k, v and the probabilities only (autodiff would also keep the raw
      // and masked scores), and frees its [L, S] intermediates as soon as this node is done (tidy).
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => tf.tidy(() => {
        const [qs, ks, vs, p] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
        const dOut = tf.reshape(tf.transpose(dy, [0, 2, 1, 3]), [B * Hkv, G * L, Dh]);
        const dProbs = tf.matMul(dOut, vs, false, true); // [B*Hkv, G*L, S]
        const dyTimesY = tf.mul(dProbs, p); // softmax backward, in the order of tfjs's own Softmax gradient
        const dScores = tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, -1, true), p));
        const dq = tf.mul(tf.reshape(tf.matMul(dScores, ks), [B, H, L, Dh]), scale);
        const dk = tf.reshape(tf.matMul(dScores, qs, true, false), [B, Hkv, S, Dh]);
        const dv = tf.reshape(tf.matMul(p, dOut, true, false), [B, Hkv, S, Dh]);
        return [dq, dk, dv];
      }),
    };
  });
  return f(q, k, v) as tf.Tensor4D;
}

export const scaledDotProductAttention = tf.op({ scaledDotProductAttention_ });

/**
 * The same attention for decoding from a KV cache (no gradient): q [B, H, L, Dh] and what lib/kv_cache.ts gives
 * after its update (keys [B, Hkv, C, Dh]; values transposed [B, Hkv, Dh, C] or [B, Hkv, C, Dh]; the first `length`
 * of the C positions hold tokens); mask [B or 1, 1, L, length] or null. Returns [B, L, H, Dh].
 * Positions past `length` (a preallocated cache's free room, zeros) get -inf: exp gives 0 there, so a row sees what it
 * sees without them, and a row that sees nothing (left padding) still averages over the `length` positions as HF does.
 * With few queries per kv head (decode), transposed values are read as matMul rows, (Vᵀ pᵀ)ᵀ, and only the small
 * probabilities are packed; p·V would repack all S values of every head for every token on wasm.
 */
function cachedAttention_(q: tf.Tensor4D, cached: CachedKV, mask: tf.Tensor4D | null, scale: number): tf.Tensor4D {
  const { keys: k, values: v, valuesTransposed, length } = cached;
  const [B, H, L, Dh] = q.shape;
  const [, Hkv, C] = k.shape;
  checkShapes(q, k, v, valuesTransposed ? [B, Hkv, Dh, C] : [B, Hkv, C, Dh], null);
  tf.util.assert(
    length <= C && (mask === null || (mask.shape[1] === 1 && mask.shape[2] === L && mask.shape[3] === length && (mask.shape[0] === B || mask.shape[0] === 1))),
    () => `attention: mask ${JSON.stringify(mask?.shape)} does not fit [${B}, 1, ${L}, ${length}] (a cache of ${C} positions)`,
  );
  // a decode step on the native CPU backend: one op of the package's own over the `length` cached positions
  const fused = !valuesTransposed ? decodeAttentionFused(q, k, v, length, mask, scale) : undefined;
  if (fused) return fused;
  const G = H / Hkv;
  // a long or causal prefill: the scores a block of queries at a time, a causal block over the cached positions up to
  // its last query only
  const causal = isCausalMask(mask);
  const rows = queryBlockRows(L, 4 * B * H * C, causal);
  if (rows) {
    return overQueryBlocks(L, rows, 1, (l0, n) => {
      const end = causal ? length - L + l0 + n : length;
      const seen = causal ? { keys: keyRows(k, 2, end), values: keyRows(v, valuesTransposed ? 3 : 2, end), valuesTransposed, length: end } : cached;
      return cachedAttention_(queryRows(q, l0, n), seen, mask && queryRows(mask, l0, n, end), scale);
    });
  }
  const full = C === length ? mask : mask ? tf.pad(mask, [[0, 0], [0, 0], [0, 0], [0, C - length]], -Infinity) : freePositions(length, C);
  const [, , probs] = probabilities(q, k, full as tf.Tensor4D | tf.Tensor3D | null, scale);
  const vg = tf.reshape(v, valuesTransposed ? [B * Hkv, Dh, C] : [B * Hkv, C, Dh]);
  const out = !valuesTransposed ? tf.matMul(probs, vg) : G * L <= Dh ? tf.transpose(tf.matMul(vg, probs, false, true), [0, 2, 1]) : tf.matMul(probs, vg, false, true);
  // with one query per head, [B*Hkv, G, Dh] is already [B, 1, H, Dh] in memory: a reshape, not a transpose
  return L === 1 ? tf.reshape(out, [B, 1, H, Dh]) : tf.transpose(tf.reshape(out, [B, H, L, Dh]), [0, 2, 1, 3]);
}

/** Rows l0..l0+n-1 of the query axis (2) of q [B, H, L, Dh] or of a mask [B, 1, L, S] (its first `width` keys). */
const queryRows = <T extends tf.Tensor4D>(t: T, l0: number, n: number, width = -1): T => tf.slice(t, [0, 0, l0, 0], [-1, -1, n, width]) as T;

/** The first `end` positions along `axis` of keys or values (all of them: the tensor itself). */
const keyRows = <T extends tf.Tensor4D>(t: T, axis: number, end: number): T =>
  end === t.shape[axis] ? t : (tf.slice(t, [0, 0, 0, 0], t.shape.map((d, i) => (i === axis ? end : d))) as T);

/** [1, 1, C]: 0 for the first `length` positions, -inf for the free ones after them. */
function freePositions(length: number, C: number): tf.Tensor3D {
  const m = new Float32Array(C);
  m.fill(-Infinity, length);
  return tf.tensor3d(m, [1, 1, C]);
}

export const cachedAttention = tf.op({ cachedAttention_ });

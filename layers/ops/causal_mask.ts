// Causal + padding additive mask, as transformers' masking_utils.create_causal_mask + eager_mask
// (causal_mask_function AND padding_mask_function, then 0 / finfo(float32).min).
import * as tf from '@tensorflow/tfjs';

/** torch.finfo(torch.float32).min: with it a row with no visible key averages all keys, as HF eager does. */
export const MASK_MIN = -3.4028234663852886e38;

/**
 * attentionMask [B, S] 0/1 over the past + current tokens (S = past + L), queryLength L -> additive mask [B, 1, L, S].
 * Query i (absolute position past + i) sees key j iff j <= past + i and attentionMask[b, j] == 1.
 * A pure function of its inputs; nothing in it is differentiated.
 */
function causalMask_(attentionMask: tf.Tensor2D, queryLength: number): tf.Tensor4D {
  const [B, S] = attentionMask.shape;
  const past = S - queryLength;
  tf.util.assert(past >= 0, () => `causalMask: attention mask [${B}, ${S}] is shorter than the ${queryLength} query tokens`);
  const queryPos = tf.reshape(tf.range(past, S, 1, 'int32'), [queryLength, 1]);
  const keyPos = tf.reshape(tf.range(0, S, 1, 'int32'), [1, S]);
  const causal = tf.lessEqual(keyPos, queryPos); // [L, S]
  const padding = tf.reshape(tf.notEqual(attentionMask, tf.scalar(0, attentionMask.dtype)), [B, 1, 1, S]);
  const visible = tf.logicalAnd(causal, padding) as tf.Tensor4D; // [B, 1, L, S]
  return tf.where(visible, 0, MASK_MIN) as tf.Tensor4D; // the scalars broadcast
}

export const causalMask = tf.op({ causalMask_ });

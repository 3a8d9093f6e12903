// Causal + padding additive mask, as transformers' masking_utils.create_causal_mask + eager_mask
// (causal_mask_function AND padding_mask_function, then 0 / finfo(float32).min).
import * as tf from '@tensorflow/tfjs';
import { causalBlocksApply } from './query_blocks';

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

/** Masks from unpaddedCausalMask that attention may run in causal blocks. */
const causalMasks = new WeakSet<tf.Tensor>();

/**
 * The causal mask of L queries over S = past + L positions without padding, [1, 1, L, S] (causalMask of all ones).
 * Marked for causal blocks (isCausalMask) where they apply: every row sees key 0 and no key after its own position.
 */
export function unpaddedCausalMask(S: number, L: number): tf.Tensor4D {
  const mask = tf.tidy(() => causalMask(tf.ones([1, S], 'int32'), L));
  if (causalBlocksApply(L)) causalMasks.add(mask);
  return mask;
}

/**
 * Whether attention may skip, for a block of query rows, every key after the block's last query: true for a mask from
 * unpaddedCausalMask. A padded mask keeps its whole width: a row that sees nothing (left padding) is averaged over all
 * S keys by HF, and telling whether a row does would take a host read of the mask.
 */
export function isCausalMask(mask: tf.Tensor | null): boolean {
  return mask !== null && causalMasks.has(mask);
}

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
  const mask = tf.where(visible, 0, MASK_MIN) as tf.Tensor4D; // the scalars broadcast
  if (causalBlocksApply(queryLength) && firstKeyVisible(attentionMask)) causalMasks.add(mask);
  return mask;
}

export const causalMask = tf.op({ causalMask_ });

/** Masks from causalMask in which every query row sees key 0 (checked only where attention would use it). */
const causalMasks = new WeakSet<tf.Tensor>();

/**
 * attentionMask[b, 0] != 0 for every row b: one host read of B values. False where the backend cannot read it
 * synchronously (webgpu in Node, for a mask already on the GPU): the mask then keeps its whole width.
 */
function firstKeyVisible(attentionMask: tf.Tensor2D): boolean {
  const first = tf.slice(attentionMask, [0, 0], [-1, 1]);
  try {
    return Array.from(first.dataSync()).every((x) => x !== 0);
  } catch {
    return false;
  } finally {
    first.dispose();
  }
}

/**
 * Whether attention may skip, for a block of query rows, every key after the block's last query: true for a mask
 * from causalMask (query i of L sees no key after S - L + i) in which every row sees key 0. A row that sees nothing
 * (left padding) is averaged over all S keys by HF, so a mask with one keeps its whole width.
 */
export function isCausalMask(mask: tf.Tensor | null): boolean {
  return mask !== null && causalMasks.has(mask);
}

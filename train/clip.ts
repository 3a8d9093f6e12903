// Gradient clipping by global norm as torch.nn.utils.clip_grad_norm_ (norm_type 2): the norm of the per-tensor
// norms, and every gradient scaled by min(1, max_norm / (norm + 1e-6)), applied even when the factor is 1.
import * as tf from '@tensorflow/tfjs';

/**
 * Returns the clipped gradients (new tensors, same keys) and the total norm before clipping, both on the device:
 * nothing is read back. `maxNorm` Infinity computes the norm only.
 */
export function clipGradNorm<K>(grads: Map<K, tf.Tensor>, maxNorm: number): { grads: Map<K, tf.Tensor>; totalNorm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new Error(`max grad norm must be > 0, got ${maxNorm}`);
  const keys = [...grads.keys()];
  // tidy keeps tensors found in arrays and plain objects, not in Maps: return an array.
  const [totalNorm, ...clipped] = tf.tidy(() => {
    const gs = [...grads.values()];
    const norms = gs.map((g) => tf.sqrt(tf.sum(tf.square(g))));
    const total = norms.length ? tf.sqrt(tf.sum(tf.square(tf.stack(norms)))) : tf.scalar(0);
    if (maxNorm === Infinity) return [total, ...gs.map((g) => tf.clone(g))];
    const coef = tf.minimum(tf.div(tf.scalar(maxNorm), tf.add(total, tf.scalar(1e-6))), tf.scalar(1));
    return [total, ...gs.map((g) => tf.mul(g, coef))];
  });
  return { grads: new Map(keys.map((k, i) => [k, clipped[i]!])), totalNorm: totalNorm as tf.Scalar };
}

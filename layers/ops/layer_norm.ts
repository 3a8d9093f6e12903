// LayerNorm as torch.nn.functional.layer_norm over the last dim (biased variance).
import * as tf from '@tensorflow/tfjs';

/** x [..., D], weight [D], bias [D] -> [..., D] */
function layerNorm_(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

export const layerNorm = tf.op({ layerNorm_ });

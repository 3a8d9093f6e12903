// RMSNorm as Glm4vRMSNorm: x * rsqrt(mean(x^2, -1) + eps) * weight (statistics in float32).
import * as tf from '@tensorflow/tfjs';

/** x [..., D], weight [D] -> [..., D] */
function rmsNorm_(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

export const rmsNorm = tf.op({ rmsNorm_ });

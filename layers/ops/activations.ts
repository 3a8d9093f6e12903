// Activations used by GLM-V: SiLU everywhere, exact (erf) GELU after the merger LayerNorm.
import * as tf from '@tensorflow/tfjs';

/** x * sigmoid(x), as torch.nn.functional.silu */
function silu_(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** 0.5 x (1 + erf(x / sqrt 2)), as torch.nn.GELU() (approximate='none') */
function geluExact_(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

export const silu = tf.op({ silu_ });
export const geluExact = tf.op({ geluExact_ });

// RMSNorm as Glm4vRMSNorm: x * rsqrt(mean(x^2, -1) + eps) * weight (statistics in float32).
import * as tf from '@tensorflow/tfjs';

/** The forward, the same ops in the same order as HF's. */
function normalize(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/**
 * x [..., D], weight [D] -> [..., D].
 * The gradient is written out so that a backward pass keeps only x and weight (autodiff would keep x², the mean,
 * the rsqrt and the normalised x): with r = rsqrt(mean(x²) + eps), x̂ = x r and g = dy * weight,
 * dx = r (g - x̂ mean(g x̂)) and dweight = Σ_rows dy x̂.
 */
function rmsNorm_(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xx, w, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xx, w]);
    return {
      value: normalize(xx, w, eps),
      // tidy: the engine keeps whatever a gradient function leaves behind until the whole backward pass ends
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [xs, ws] = saved as [tf.Tensor, tf.Tensor];
        const D = xs.shape[xs.rank - 1]!;
        const r = tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps));
        const xhat = tf.mul(xs, r);
        const g = tf.mul(dy, ws);
        const dx = tf.mul(r, tf.sub(g, tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
        return [dx, tf.sum(tf.reshape(tf.mul(dy, xhat), [-1, D]), 0)];
      }),
    };
  });
  return f(x, weight);
}

export const rmsNorm = tf.op({ rmsNorm_ });

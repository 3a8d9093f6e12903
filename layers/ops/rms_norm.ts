// RMSNorm as Glm4vRMSNorm: x * rsqrt(mean(x^2, -1) + eps) * weight (statistics in float32).
import * as tf from '@tensorflow/tfjs';
import { rmsNormFused, rmsNormGradFused } from '../../lib/kernels/tf_fused';

/** The forward, the same ops in the same order as HF's. */
function normalize(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/**
 * x [..., D], weight [D] -> [..., D].
 * The gradient is written out so that a backward pass keeps only x and weight (autodiff would keep x², the mean,
 * the rsqrt and the normalised x until the end of the backward pass). It recomputes the statistics and then takes
 * the steps tfjs's own gradients of mul / rsqrt / add / mean / square take, in their order: the same numbers as
 * autodiff, so training trajectories do not move (on the native CPU backend one fused op takes the same steps, its
 * sums in double: within float32 rounding of them).
 */
function rmsNorm_(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  // Nothing records gradients (inference): the same forward without customGrad's scope, saves and bookkeeping; on
  // the native CPU backend as one op of the package's own (lib/kernels/tf_fused.ts)
  if (!tf.engine().isTapeOn()) return rmsNormFused(x, weight, eps) ?? normalize(x, weight, eps);
  // x enters twice, as it does in autodiff's graph (x * r and square(x)): its two gradient terms are then added to
  // whatever else x feeds (the residual) one at a time, in autodiff's order, which float addition needs.
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xx, , w, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xx, w]);
    return {
      value: normalize(xx, w, eps),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [xs, ws] = saved as [tf.Tensor, tf.Tensor];
        // on the native CPU backend the same steps as one op of the package's own, within float32 rounding
        const fused = rmsNormGradFused(xs, ws, dy, eps);
        if (fused) return fused;
        const last = xs.rank - 1, D = xs.shape[last]!;
        const s = tf.add(tf.mean(tf.square(xs), -1, true), eps);
        const r = tf.rsqrt(s);
        const a = tf.mul(xs, r);
        const dw = tf.reshape(tf.sum(tf.mul(dy, a), [...Array(last).keys()]), ws.shape); // y = a * w
        const da = tf.mul(dy, ws);
        const dr = tf.reshape(tf.sum(tf.mul(da, xs), [last]), r.shape); // a = x * r
        const ds = tf.neg(tf.div(dr, tf.mul(tf.pow(s, 1.5), 2))); // r = rsqrt(s); s = mean + eps
        const dsq = tf.div(tf.mul(ds, tf.ones(xs.shape)), D); // mean over the last axis
        return [tf.mul(da, r), tf.mul(dsq, tf.mul(xs, 2)), dw]; // through x * r, through square(x)
      }),
    };
  });
  return f(x, x, weight);
}

export const rmsNorm = tf.op({ rmsNorm_ });

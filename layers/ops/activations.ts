// Activations used by GLM-V: SiLU everywhere, exact (erf) GELU after the merger LayerNorm.
import * as tf from '@tensorflow/tfjs';
import { siluMulFused, siluMulGradFused } from '../../lib/kernels/tf_fused';

/** x * sigmoid(x), as torch.nn.functional.silu */
function silu_(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * The SwiGLU product silu(gate) * up (HF: up * act_fn(gate), the same products), [..., F] each.
 * Its gradient is written out so a backward pass keeps only gate and up (autodiff would also keep sigmoid(gate)
 * and silu(gate)): with s = sigmoid(gate), dup = dy * gate * s and dgate = dy * up * (s + gate * s * (1 - s)).
 */
function siluMul_(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  // Nothing records gradients (inference): the same forward without customGrad's scope, saves and bookkeeping.
  // (on the native CPU backend one op of the package's own)
  if (!tf.engine().isTapeOn()) return siluMulFused(gate, up) ?? tf.mul(up, silu_(gate));
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [g, u, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([g, u]);
    return {
      value: tf.mul(u, silu_(g)),
      // tidy: the engine keeps whatever a gradient function leaves behind until the whole backward pass ends
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [gs, us] = saved as [tf.Tensor, tf.Tensor];
        // on the native CPU backend the same steps as one op of the package's own, within float32 rounding
        const fused = siluMulGradFused(gs, us, dy);
        if (fused) return fused;
        // the products and sums of autodiff through mul(up, mul(gate, sigmoid(gate))), so training is unchanged
        const s = tf.sigmoid(gs);
        const dsilu = tf.mul(dy, us);
        const dgate = tf.add(tf.mul(dsilu, s), tf.mul(tf.mul(dsilu, gs), tf.mul(s, tf.sub(1, s))));
        return [dgate, tf.mul(dy, tf.mul(gs, s))];
      }),
    };
  });
  return f(gate, up);
}

/** 0.5 x (1 + erf(x / sqrt 2)), as torch.nn.GELU() (approximate='none') */
function geluExact_(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

export const silu = tf.op({ silu_ });
export const geluExact = tf.op({ geluExact_ });
export const siluMul = tf.op({ siluMul_ });

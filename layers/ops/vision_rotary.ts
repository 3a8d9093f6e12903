// NeoX half-split rotary on the full head dim: apply_rotary_pos_emb_vision + rotate_half of
// transformers/models/glm4v/modeling_glm4v.py.
import * as tf from '@tensorflow/tfjs';
import { applyRotation, halfRotation } from './rotation';

/** rotate_half: [x1, x2] -> [-x2, x1] on the last axis (dims i and i + Dh/2 are a pair). */
function rotateHalf_(x: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.concat([tf.neg(x2!), x1!], -1);
}

/**
 * x * cos + rotate_half(x) * sin for one of q/k.
 * x [N, H, Dh]; cos, sin [N, Dh], shared by all heads. Returns [N, H, Dh].
 * rotate_half is a signed permutation applied as one small matMul (applyRotation), not a split and a concat.
 */
function applyRotaryVision_(x: tf.Tensor3D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor3D {
  const [N, , Dh] = x.shape;
  tf.util.assert(
    Dh % 2 === 0 && tf.util.arraysEqual(cos.shape, [N, Dh]) && tf.util.arraysEqual(sin.shape, [N, Dh]),
    () => `applyRotaryVision: x ${JSON.stringify(x.shape)} needs cos/sin [${N}, ${Dh}] (even Dh), got ${JSON.stringify(cos.shape)} / ${JSON.stringify(sin.shape)}`,
  );
  return applyRotation(x, tf.expandDims(cos, 1), tf.expandDims(sin, 1), halfRotation(Dh)) as tf.Tensor3D; // cos, sin [N, 1, Dh]
}

export const rotateHalf = tf.op({ rotateHalf_ });
export const applyRotaryVision = tf.op({ applyRotaryVision_ });

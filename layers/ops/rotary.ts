// GLM text rotary ops, from transformers/models/glm4v/modeling_glm4v.py: Glm4vTextRotaryEmbedding.forward
// (M-RoPE cos/sin with mrope_section over the frequency index) and apply_rotary_pos_emb (interleaved, partial).
import * as tf from '@tensorflow/tfjs';
import { applyRotation, interleavedRotation } from './rotation';

/**
 * inv_freq of compute_default_rope_parameters: 1 / theta^(2j / rotaryDim), j < rotaryDim/2, rounded as torch's
 * float32 arithmetic rounds it.
 */
export function ropeInvFreq(theta: number, rotaryDim: number): Float32Array {
  const out = new Float32Array(rotaryDim / 2);
  for (let j = 0; j < out.length; j++) {
    out[j] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / rotaryDim))));
  }
  return out;
}

/**
 * Multimodal rotary tables as Glm4vTextRotaryEmbedding.forward returns them.
 * positionIds [3, B, L] int (rows t, h, w); invFreq [R/2]; mropeSection sums to R/2.
 * Frequency j in section i takes its angle from row i % 3 (chunked M-RoPE, not Qwen3-VL's interleaved one);
 * each angle is then repeated for the (even, odd) pair it rotates.
 * Returns cos, sin [B, L, R] = [c0, c0, c1, c1, ...], or with `halves` cat([c, c]) = [c0, c1, ..., c0, c1, ...].
 * Computed on the host, as the vision rotary is: the angle is torch's float32 product, its cos and sin correctly
 * rounded. WebGPU's sin and cos are approximations (WGSL allows 2^-11 absolute error; SwiftShader is off by 2e-4 at
 * angles of 1000 rad), which moved the text layers by 7e-4. Positions are host data (model.ts builds them).
 */
function mropeCosSin_(positionIds: tf.Tensor3D, invFreq: tf.Tensor1D, mropeSection: number[], layout: 'pairs' | 'halves' = 'pairs'): [tf.Tensor3D, tf.Tensor3D] {
  const [, B, L] = positionIds.shape;
  const half = invFreq.shape[0];
  tf.util.assert(
    positionIds.shape[0] === 3 && mropeSection.reduce((a, b) => a + b, 0) === half,
    () => `mropeCosSin: positionIds ${JSON.stringify(positionIds.shape)} must be [3, B, L] and mrope_section ${JSON.stringify(mropeSection)} must sum to ${half}`,
  );
  const pos = positionIds.dataSync(), inv = invFreq.dataSync();
  const row = new Int32Array(half); // which of t, h, w each frequency takes its angle from
  let start = 0;
  mropeSection.forEach((n, i) => row.fill(i % 3, start, (start += n)));
  const cos = new Float32Array(B * L * 2 * half), sin = new Float32Array(B * L * 2 * half);
  for (let t = 0; t < B * L; t++) {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(pos[row[j]! * B * L + t]! * inv[j]!);
      const [c, s] = [Math.cos(angle), Math.sin(angle)];
      // pairs: [c0, c0, c1, c1, ...] (GLM-4.1V's interleaved rotation); halves: [c0, c1, ..., c0, c1, ...] (glm4v_moe)
      const [a, b] = layout === 'pairs' ? [t * 2 * half + 2 * j, t * 2 * half + 2 * j + 1] : [t * 2 * half + j, t * 2 * half + half + j];
      cos[a] = cos[b] = c;
      sin[a] = sin[b] = s;
    }
  }
  return [tf.tensor3d(cos, [B, L, 2 * half]), tf.tensor3d(sin, [B, L, 2 * half])];
}

/**
 * cos, sin [B, L, R] -> [B, L, 1, Dh], the form applyRotaryPosEmb broadcasts over the heads: cos padded with 1 and
 * sin with 0 on dims R.. (x * 1 + 0: they pass through). Made once per forward and shared by every layer.
 */
function rotaryTables_(cos: tf.Tensor3D, sin: tf.Tensor3D, headDim: number): [tf.Tensor4D, tf.Tensor4D] {
  const R = cos.shape[2];
  tf.util.assert(R % 2 === 0 && R <= headDim && tf.util.arraysEqual(cos.shape, sin.shape), () => `rotaryTables: cos ${JSON.stringify(cos.shape)} / sin ${JSON.stringify(sin.shape)} do not fit head dim ${headDim}`);
  const pad = (t: tf.Tensor3D, value: number) => tf.expandDims(R === headDim ? t : tf.pad(t, [[0, 0], [0, 0], [0, headDim - R]], value), 2) as tf.Tensor4D;
  return [pad(cos, 1), pad(sin, 0)];
}

/**
 * apply_rotary_pos_emb for one of q/k, in the [B, L, H, Dh] layout that the projections give (no transpose needed).
 * x [B, L, H, Dh]; cos, sin [B, L, R] with R <= Dh even, or already in rotaryTables' form [B, L, 1, Dh] with R
 * given as rotaryDim. Dims 2j and 2j+1 of the first R rotate by angle j (rotate_half_llm: (x0, x1) -> (-x1, x0));
 * dims R.. pass through. Same products and sums as HF's q * cos + rotate_half_llm(q) * sin; see applyRotation for
 * the gradient.
 */
function applyRotaryPosEmb_(x: tf.Tensor4D, cos: tf.Tensor3D | tf.Tensor4D, sin: tf.Tensor3D | tf.Tensor4D, rotaryDim?: number): tf.Tensor4D {
  const [B, L, , Dh] = x.shape;
  const R = cos.rank === 4 ? rotaryDim ?? Dh : cos.shape[2];
  tf.util.assert(
    R % 2 === 0 && R <= Dh && cos.shape[0] === B && cos.shape[1] === L && (cos.rank === 3 || cos.shape[3] === Dh) && tf.util.arraysEqual(cos.shape, sin.shape),
    () => `applyRotaryPosEmb: x ${JSON.stringify(x.shape)} does not fit cos ${JSON.stringify(cos.shape)} / sin ${JSON.stringify(sin.shape)}`,
  );
  const [c, s] = cos.rank === 4 ? [cos, sin] : rotaryTables(cos as tf.Tensor3D, sin as tf.Tensor3D, Dh);
  return applyRotation(x, c, s, interleavedRotation(Dh, R)) as tf.Tensor4D;
}

export const mropeCosSin = tf.op({ mropeCosSin_ });
export const rotaryTables = tf.op({ rotaryTables_ });
export const applyRotaryPosEmb = tf.op({ applyRotaryPosEmb_ });

// torch.nn.functional.grid_sample(mode='bicubic', padding_mode='border', align_corners=False) at the pixel centres
// of an [h, w] grid, as Glm4vVisionEmbeddings resamples its learned position table (ATen GridSampler bicubic branch).
import * as tf from '@tensorflow/tfjs';

/** ATen's cubic convolution coefficient A (upsample_bicubic2d and grid_sample share it). */
const A = -0.75;

function cubic1(x: number): number {
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}

function cubic2(x: number): number {
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

/**
 * The bicubic weights along one axis as a dense [outSize, side] matrix: row i holds the weights that output
 * position i gives to the `side` source positions.
 * The source coordinate is unnormalised as grid_sample does with align_corners=False from the grid value
 * `((i + 0.5) / outSize) * 2 - 1` (rounded to float32 like the reference's grid); it is not clipped. Each of the
 * four taps floor-1 .. floor+2 is clamped to [0, side - 1] ('border'), so clamped taps add up on the edge row.
 */
export function bicubicAxisWeights(outSize: number, side: number): Float32Array {
  const w = new Float64Array(outSize * side);
  for (let i = 0; i < outSize; i++) {
    const norm = Math.fround(Math.fround(Math.fround(Math.fround(i + 0.5) / outSize) * 2) - 1);
    const src = ((norm + 1) * side - 1) / 2;
    const f = Math.floor(src);
    const t = src - f;
    const coeffs = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
    for (let k = 0; k < 4; k++) {
      const tap = Math.min(Math.max(f - 1 + k, 0), side - 1);
      w[i * side + tap] += coeffs[k]!;
    }
  }
  return Float32Array.from(w);
}

/**
 * Samples `table` [Sh, Sw, D] (channels last) at the centres of an outH x outW grid -> [outH, outW, D]:
 * out[y, x, :] = sum_ab Wy[y, a] Wx[x, b] table[a, b, :], the separable form of bicubic grid_sample.
 * Two plain matMuls with constant weights, so it is fast on every backend and differentiable w.r.t. `table`.
 * Matches F.grid_sample(table.permute(2, 0, 1)[None], grid, 'bicubic', padding_mode='border', align_corners=False)
 * with grid[y, x] = ((x + 0.5) / outW * 2 - 1, (y + 0.5) / outH * 2 - 1).
 */
function gridSampleBicubic_(table: tf.Tensor3D, outH: number, outW: number): tf.Tensor3D {
  const [Sh, Sw, D] = table.shape;
  tf.util.assert(
    Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0,
    () => `gridSampleBicubic: output size must be positive integers, got ${outH} x ${outW}`,
  );
  const wy = tf.tensor2d(bicubicAxisWeights(outH, Sh), [outH, Sh]);
  const wx = tf.tensor2d(bicubicAxisWeights(outW, Sw), [outW, Sw]);
  const rows = tf.reshape(tf.matMul(wy, tf.reshape(table, [Sh, Sw * D])), [outH, Sw, D]);
  const byCol = tf.reshape(tf.transpose(rows, [1, 0, 2]), [Sw, outH * D]); // [Sw, outH*D]
  const cols = tf.reshape(tf.matMul(wx, byCol), [outW, outH, D]);
  return tf.transpose(cols, [1, 0, 2]) as tf.Tensor3D;
}

export const gridSampleBicubic = tf.op({ gridSampleBicubic_ });

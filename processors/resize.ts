// Antialiased bicubic resize of uint8 images, a port of what torchvision's resize(BICUBIC, antialias=True) runs
// on a uint8 tensor on the CPU (the reference GLM-V image processor's path): PyTorch's separable uint8 kernel in
// aten/src/ATen/native/cpu/UpSampleKernel.cpp (_compute_indices_min_size_weights_aa,
// _compute_index_ranges_int16_weights, basic_loop_aa_horizontal/vertical<uint8_t>; the AVX2 kernel is the same
// integer arithmetic). It is Pillow's algorithm (Keys cubic a = -0.5, support scaled by the downscale factor,
// horizontal pass first, uint8 between passes) except that the weights are int16 with a per-axis precision
// instead of Pillow's 22 bits, so PIL's Image.resize(BICUBIC) can differ from it by one level at a few pixels.
import type { RgbImage } from './image_io';

/** HelperInterpCubic::aa_filter, cubic_convolution1/2 of UpSample.h with A = -0.5 (Keys). */
function cubic(x: number): number {
  const A = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

/** One axis of the resize: for output i, `sizes[i]` taps from input `starts[i]`, int16 weights in rows of `ksize`. */
export interface AxisWeights {
  starts: Int32Array;
  sizes: Int32Array;
  weights: Int16Array;
  ksize: number;
  /** fixed-point bits of the weights */
  precision: number;
}

/** The integer weights PyTorch uses for an antialiased bicubic resize from `inSize` to `outSize` samples. */
export function bicubicAntialiasWeights(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize; // area_pixel_compute_scale, align_corners=False, no explicit scale factor
  const support = scale >= 1 ? 2 * scale : 2;
  const ksize = Math.ceil(support) * 2 + 1;
  const invscale = scale >= 1 ? 1 / scale : 1;
  const starts = new Int32Array(outSize), sizes = new Int32Array(outSize);
  const wf = new Float64Array(outSize * ksize);
  let wtMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.max(Math.min(Math.trunc(center + support + 0.5), inSize) - xmin, 0), ksize);
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const w = cubic((j + xmin - center + 0.5) * invscale);
      wf[i * ksize + j] = w;
      total += w;
    }
    if (total !== 0) {
      for (let j = 0; j < xsize; j++) {
        wf[i * ksize + j] /= total;
        wtMax = Math.max(wtMax, wf[i * ksize + j]!);
      }
    }
    starts[i] = xmin;
    sizes[i] = xsize;
  }
  // As many fractional bits as int16 holds: stop at the first precision where twice the largest weight overflows.
  let precision = 0;
  for (; precision < 22; precision++) {
    if (Math.trunc(0.5 + wtMax * 2 ** (precision + 1)) >= 1 << 15) break;
  }
  const weights = new Int16Array(outSize * ksize);
  for (let k = 0; k < wf.length; k++) {
    const v = wf[k]! * 2 ** precision;
    weights[k] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { starts, sizes, weights, ksize, precision };
}

/** Horizontal pass: each of `rows` rows of `inW` interleaved pixels -> `outW` pixels. */
function horizontalPass(src: Uint8Array, dst: Uint8Array, ax: AxisWeights, rows: number, inW: number, C: number): void {
  const { starts, sizes, weights, ksize, precision } = ax;
  const half = 1 << (precision - 1), outW = starts.length;
  for (let y = 0; y < rows; y++) {
    for (let i = 0; i < outW; i++) {
      const k0 = i * ksize, n = sizes[i]!, base = (y * inW + starts[i]!) * C;
      for (let c = 0; c < C; c++) {
        let acc = half;
        for (let j = 0, p = base + c; j < n; j++, p += C) acc += weights[k0 + j]! * src[p]!;
        const v = acc >> precision;
        dst[(y * outW + i) * C + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
}

/** Vertical pass: whole rows of `rowLen` samples, accumulated row by row for locality. */
function verticalPass(src: Uint8Array, dst: Uint8Array, ax: AxisWeights, rowLen: number): void {
  const { starts, sizes, weights, ksize, precision } = ax;
  const half = 1 << (precision - 1), acc = new Int32Array(rowLen);
  for (let i = 0; i < starts.length; i++) {
    acc.fill(half);
    for (let j = 0; j < sizes[i]!; j++) {
      const w = weights[i * ksize + j]!, row = (starts[i]! + j) * rowLen;
      for (let x = 0; x < rowLen; x++) acc[x] += w * src[row + x]!;
    }
    const o = i * rowLen;
    for (let x = 0; x < rowLen; x++) {
      const v = acc[x]! >> precision;
      dst[o + x] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
}

/**
 * torchvision.transforms.v2.functional.resize(img, [height, width], BICUBIC, antialias=True) on a uint8 RGB
 * image: horizontal pass first when the width changes, then the vertical pass, each rounding to uint8.
 */
export function resizeBicubicAntialias(img: RgbImage, height: number, width: number): RgbImage {
  const C = 3, H = img.height, W = img.width;
  if (!(height > 0 && width > 0)) throw new Error(`resize: target size must be positive, got ${height}x${width}`);
  if (height === H && width === W) return { width, height, data: img.data };
  let data = img.data;
  if (width !== W) {
    const out = new Uint8Array(H * width * C);
    horizontalPass(data, out, bicubicAntialiasWeights(W, width), H, W, C);
    data = out;
  }
  if (height !== H) {
    const out = new Uint8Array(height * width * C);
    verticalPass(data, out, bicubicAntialiasWeights(H, height), width * C);
    data = out;
  }
  return { width, height, data };
}

// 16 float lanes with GCC's vector extensions, for the package's kernels (rows.inc, decode_attention.inc). Included
// once by each of kernels_avx512.c, kernels_avx2.c and kernels_base.c after their `#pragma GCC target`: every helper
// here is compiled for that instruction set (an inline function compiled for the baseline and inlined into an
// AVX-512 one keeps the baseline's code for what it cannot do there: lane comparisons one lane at a time).
// VEC16_ISA names the set; VEC16_NAME(f) is f's name for it.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VEC16_CAT_(a, b) a##_##b
#define VEC16_CAT(a, b) VEC16_CAT_(a, b)
#define VEC16_NAME(f) VEC16_CAT(f, VEC16_ISA)

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

#define VEC16_INLINE static inline __attribute__((always_inline))

VEC16_INLINE v16 load16(const float* p) {
  v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}

VEC16_INLINE void store16(float* p, v16 v) { memcpy(p, &v, sizeof v); }

// a * b + c, fused (one rounding) where the set has FMA, as Eigen's pmadd; the addon is built with float contraction
// off (the ops that give tfjs's bits must not fuse), so a fused product is asked for by name, only where wanted.
#if defined(__AVX512F__)
#include <immintrin.h>
VEC16_INLINE v16 fma16(v16 a, v16 b, v16 c) { return (v16)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
#elif defined(__FMA__)
#include <immintrin.h>
VEC16_INLINE v16 fma16(v16 a, v16 b, v16 c) {
  typedef float v8f __attribute__((vector_size(32)));
#define VEC16_HALF(v, h) ((__m256)__builtin_shufflevector(v, v, 8 * h, 8 * h + 1, 8 * h + 2, 8 * h + 3, 8 * h + 4, 8 * h + 5, 8 * h + 6, 8 * h + 7))
  const v8f lo = (v8f)_mm256_fmadd_ps(VEC16_HALF(a, 0), VEC16_HALF(b, 0), VEC16_HALF(c, 0));
  const v8f hi = (v8f)_mm256_fmadd_ps(VEC16_HALF(a, 1), VEC16_HALF(b, 1), VEC16_HALF(c, 1));
#undef VEC16_HALF
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
#else
VEC16_INLINE v16 fma16(v16 a, v16 b, v16 c) { return a * b + c; }
#endif

// exp on 16 lanes: Cephes' expf polynomial, as Eigen's pexp that TensorFlow's element-wise ops run (x = n ln2 + r,
// |r| <= ln2 / 2, 2^n by the exponent bits), within 2 ulp of expf; 0 below -88, +inf above 88 (expf is subnormal or
// near the largest float there), NaN for NaN.
VEC16_INLINE v16 exp16(v16 x) {
  const v16i under = x < -88.0f, over = x > 88.0f;
  x = (v16)((v16i)x & ~(under | over));  // those lanes compute exp(0), then are replaced
  const v16 zero = {0};
  const v16 shift = fma16(x, zero + 1.44269504088896341f, zero + 12582912.0f);  // round to nearest by the 2^23 + 2^22 trick
  const v16 n = shift - 12582912.0f;
  const v16 r = fma16(n, zero + 2.12194440e-4f, fma16(n, zero - 0.693359375f, x));
  v16 y = fma16(r, zero + 1.9875691500e-4f, zero + 1.3981999507e-3f);
  y = fma16(y, r, zero + 8.3334519073e-3f);
  y = fma16(y, r, zero + 4.1665795894e-2f);
  y = fma16(y, r, zero + 1.6666665459e-1f);
  y = fma16(y, r, zero + 5.0000001201e-1f);
  y = fma16(y, r * r, r) + 1.0f;
  const v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
  const v16i inf = (v16i){0} + 0x7f800000;
  return (v16)(((v16i)(y * (v16)bits) & ~(under | over)) | (inf & over));
}

// The sum of 16 lanes.
VEC16_INLINE float sum_lanes(v16 v) {
  float s = 0;
  for (int i = 0; i < 16; i++) s += v[i];
  return s;
}

// x[0..S) = softmax(x[0..S)), S > 0: exp(x - max) * (1 / sum), 16 lanes at a time.
VEC16_INLINE void softmax16(float* x, int64_t S) {
  const int64_t body = S & ~(int64_t)15;
  float max = -INFINITY;
  v16 lanes = max - (v16){0};
  for (int64_t s = 0; s < body; s += 16) {
    const v16 v = load16(x + s);
    const v16i more = v > lanes;
    lanes = (v16)(((v16i)v & more) | ((v16i)lanes & ~more));
  }
  for (int i = 0; i < 16; i++) max = lanes[i] > max ? lanes[i] : max;
  for (int64_t s = body; s < S; s++) max = x[s] > max ? x[s] : max;
  v16 acc = {0};
  for (int64_t s = 0; s < body; s += 16) {
    const v16 e = exp16(load16(x + s) - max);
    store16(x + s, e);
    acc += e;
  }
  float sum = sum_lanes(acc);
  for (int64_t s = body; s < S; s++) sum += (x[s] = expf(x[s] - max));
  const float inv = 1.0f / sum;  // a product by the inverse, as TensorFlow's and torch's softmax: a division a lane is slow
  for (int64_t s = 0; s < body; s += 16) store16(x + s, load16(x + s) * inv);
  for (int64_t s = body; s < S; s++) x[s] *= inv;
}

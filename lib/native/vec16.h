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

// exp on 16 lanes: Cephes' expf polynomial, as Eigen's pexp that TensorFlow's element-wise ops run (x = n ln2 + r,
// |r| <= ln2 / 2, 2^n by the exponent bits), within 2 ulp of expf; 0 below -88, +inf above 88 (expf is subnormal or
// near the largest float there), NaN for NaN.
VEC16_INLINE v16 exp16(v16 x) {
  const v16i under = x < -88.0f, over = x > 88.0f;
  x = (v16)((v16i)x & ~(under | over));  // those lanes compute exp(0), then are replaced
  const v16 shift = x * 1.44269504088896341f + 12582912.0f;  // round to nearest by the 2^23 + 2^22 trick
  const v16 n = shift - 12582912.0f;
  const v16 r = x - n * 0.693359375f - n * -2.12194440e-4f;
  v16 y = r * 1.9875691500e-4f + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
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

// The one-token product y = x Wᵀ + b of the package's Glm46vLinear op (fused_ops.c), for the few rows of x a decode
// step has. TensorFlow runs it as oneDNN's sgemm with m = 1, which costs 1.3-2.9x torch's F.linear per shape of the
// bench model (docs/benchmark.md): a GEMM's fixed cost on a product that only streams W. Hand-written because no
// kernel TensorFlow's C API reaches does this. Here W is read once, GEMV_BLOCK rows at a time, each row's dot
// product with every row of x while the block sits in L1; AVX-512 or AVX2 with FMA as kernel_isa() chooses.
#include "gemv.h"

#include "kernels.h"

#include <stddef.h>

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static void blocks_avx512(const struct gemv_args* a, int64_t from, int64_t to) {
  const int64_t K = a->K, body = K & ~(int64_t)15;
  const __mmask16 tail = (__mmask16)((1u << (K & 15)) - 1);
  for (int64_t j0 = from * GEMV_BLOCK; j0 < to * GEMV_BLOCK && j0 < a->N; j0 += 4) {
    const int rows = a->N - j0 < 4 ? (int)(a->N - j0) : 4;
    const float* w[4];
    for (int r = 0; r < 4; r++) w[r] = a->w + (j0 + (r < rows ? r : 0)) * K;  // a short block repeats its first row
    for (int64_t m = 0; m < a->M; m++) {
      const float* x = a->x + m * K;
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t k = 0; k < body; k += 16) {
        const __m512 xv = _mm512_loadu_ps(x + k);
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w[0] + k), xv, s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w[1] + k), xv, s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(w[2] + k), xv, s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(w[3] + k), xv, s3);
      }
      if (tail) {
        const __m512 xv = _mm512_maskz_loadu_ps(tail, x + body);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w[0] + body), xv, s0);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w[1] + body), xv, s1);
        s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w[2] + body), xv, s2);
        s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w[3] + body), xv, s3);
      }
      const float s[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2), _mm512_reduce_add_ps(s3)};
      float* y = a->y + m * a->N + j0;
      for (int r = 0; r < rows; r++) y[r] = a->bias ? s[r] + a->bias[j0 + r] : s[r];
    }
  }
}

__attribute__((target("avx2,fma"))) static float sum8(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

__attribute__((target("avx2,fma"))) static void blocks_avx2(const struct gemv_args* a, int64_t from, int64_t to) {
  const int64_t K = a->K, body = K & ~(int64_t)7;
  for (int64_t j0 = from * GEMV_BLOCK; j0 < to * GEMV_BLOCK && j0 < a->N; j0 += 4) {
    const int rows = a->N - j0 < 4 ? (int)(a->N - j0) : 4;
    const float* w[4];
    for (int r = 0; r < 4; r++) w[r] = a->w + (j0 + (r < rows ? r : 0)) * K;
    for (int64_t m = 0; m < a->M; m++) {
      const float* x = a->x + m * K;
      __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t k = 0; k < body; k += 8) {
        const __m256 xv = _mm256_loadu_ps(x + k);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w[0] + k), xv, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w[1] + k), xv, s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(w[2] + k), xv, s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(w[3] + k), xv, s3);
      }
      float s[4] = {sum8(s0), sum8(s1), sum8(s2), sum8(s3)};
      for (int64_t k = body; k < K; k++)
        for (int r = 0; r < 4; r++) s[r] += w[r][k] * x[k];
      float* y = a->y + m * a->N + j0;
      for (int r = 0; r < rows; r++) y[r] = a->bias ? s[r] + a->bias[j0 + r] : s[r];
    }
  }
}
#endif

static void blocks_scalar(const struct gemv_args* a, int64_t from, int64_t to) {
  for (int64_t j = from * GEMV_BLOCK; j < to * GEMV_BLOCK && j < a->N; j++) {
    const float* w = a->w + j * a->K;
    for (int64_t m = 0; m < a->M; m++) {
      const float* x = a->x + m * a->K;
      float s = 0;
      for (int64_t k = 0; k < a->K; k++) s += w[k] * x[k];
      a->y[m * a->N + j] = a->bias ? s + a->bias[j] : s;
    }
  }
}

void gemv_blocks(const void* args, int64_t from, int64_t to) {
  const struct gemv_args* a = (const struct gemv_args*)args;
  switch (kernel_isa()) {
#if defined(__x86_64__)
    case ISA_AVX512: blocks_avx512(a, from, to); return;
    case ISA_AVX2: blocks_avx2(a, from, to); return;
#endif
    default: blocks_scalar(a, from, to);
  }
}

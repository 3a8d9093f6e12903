// The attention of a decode step (one query, or a few, per head) over the preallocated KV cache of lib/kv_cache.ts,
// for the package's Glm46vDecodeAttention op (fused_ops.c): softmax(q * scale kᵀ + mask) v over the first `length`
// cached positions, with the G query heads of a kv head reading its keys and values once. In eager TensorFlow it is
// Mul, two BatchMatMulV2, Add, Softmax and reshapes, over all C positions of the cache (its free ones masked out).
// Hand-written because TensorFlow's C kernel API reaches no fused attention kernel.
//
// The arithmetic is the tfjs path's (layers/ops/attention.ts): q scaled first, the scores in float32, the mask added,
// softmax as exp(x - max) / sum; the sums in another order, so equal within float32 rounding. The scores are
// gemv.c's product with the keys as weight rows; the values are summed a block of keys at a time, in registers.
#include "decode_attention.h"

#include "gemv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) v16 load16(const float* p) {
  v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}

enum { KEY_BLOCK = 128 };  // keys whose values stay in L2 while every query row of a unit adds them up

// acc[0..n) += p[s] * v[s * stride ..][0..n) for s < S, acc in registers: 64 columns at a time, then 16, then 1.
static inline __attribute__((always_inline)) void weighted_rows(float* acc, const float* p, const float* v, int64_t S, int64_t stride, int64_t n) {
  int64_t d = 0;
  for (; d + 64 <= n; d += 64) {
    v16 a0 = load16(acc + d), a1 = load16(acc + d + 16), a2 = load16(acc + d + 32), a3 = load16(acc + d + 48);
    for (int64_t s = 0; s < S; s++) {
      const float* row = v + s * stride + d;
      a0 += p[s] * load16(row), a1 += p[s] * load16(row + 16), a2 += p[s] * load16(row + 32), a3 += p[s] * load16(row + 48);
    }
    memcpy(acc + d, &a0, 64), memcpy(acc + d + 16, &a1, 64), memcpy(acc + d + 32, &a2, 64), memcpy(acc + d + 48, &a3, 64);
  }
  for (; d + 16 <= n; d += 16) {
    v16 a = load16(acc + d);
    for (int64_t s = 0; s < S; s++) a += p[s] * load16(v + s * stride + d);
    memcpy(acc + d, &a, 64);
  }
  for (; d < n; d++)
    for (int64_t s = 0; s < S; s++) acc[d] += p[s] * v[s * stride + d];
}

static inline __attribute__((always_inline)) void unit(const struct decode_attention_args* a, int64_t u, float* work) {
  const int64_t G = a->H / a->Hkv, rows = G * a->L, Dh = a->Dh, S = a->length;
  const int64_t chunk = u % a->chunks, bk = u / a->chunks, b = bk / a->Hkv, hk = bk % a->Hkv;
  const int64_t r0 = rows * chunk / a->chunks, r1 = rows * (chunk + 1) / a->chunks, n = r1 - r0;
  if (n == 0) return;
  const float *keys = a->keys + bk * a->C * Dh, *values = a->values + bk * a->C * Dh;
  float *qs = work, *scores = qs + n * Dh, *acc = scores + n * S;
  // row r = g * L + l: head hk * G + g, query l
  for (int64_t r = 0; r < n; r++) {
    const int64_t g = (r0 + r) / a->L, l = (r0 + r) % a->L;
    const float* q = a->q + ((b * a->H + hk * G + g) * a->L + l) * Dh;
    for (int64_t d = 0; d < Dh; d++) qs[r * Dh + d] = q[d] * a->scale;
  }
  // the scores: the keys as a one-token product's weight rows, [n, Dh] x [S, Dh]ᵀ
  const struct gemv_args qk = {qs, keys, NULL, scores, n, S, Dh};
  gemv_blocks(&qk, 0, (S + GEMV_BLOCK - 1) / GEMV_BLOCK);
  for (int64_t r = 0; r < n; r++) {
    float* x = scores + r * S;
    if (a->mask) {
      const float* m = a->mask + ((a->Bm == 1 ? 0 : b) * a->L + (r0 + r) % a->L) * S;
      for (int64_t s = 0; s < S; s++) x[s] += m[s];
    }
    float max = -INFINITY, sum = 0;
    for (int64_t s = 0; s < S; s++) max = x[s] > max ? x[s] : max;
    for (int64_t s = 0; s < S; s++) sum += (x[s] = expf(x[s] - max));
    for (int64_t s = 0; s < S; s++) x[s] /= sum;
  }
  memset(acc, 0, (size_t)(n * Dh) * sizeof(float));
  for (int64_t s0 = 0; s0 < S; s0 += KEY_BLOCK) {
    const int64_t block = S - s0 < KEY_BLOCK ? S - s0 : KEY_BLOCK;
    for (int64_t r = 0; r < n; r++) weighted_rows(acc + r * Dh, scores + r * S + s0, values + s0 * Dh, block, Dh, Dh);
  }
  for (int64_t r = 0; r < n; r++) {
    const int64_t g = (r0 + r) / a->L, l = (r0 + r) % a->L;
    memcpy(a->out + ((b * a->L + l) * a->H + hk * G + g) * Dh, acc + r * Dh, (size_t)Dh * sizeof(float));
  }
}

// The units of one span, with one work buffer: the scaled queries, their scores and their outputs.
static inline __attribute__((always_inline)) void units(const struct decode_attention_args* a, int64_t from, int64_t to) {
  const int64_t rows = (a->H / a->Hkv * a->L + a->chunks - 1) / a->chunks;
  float* work = malloc((size_t)(rows * (2 * a->Dh + a->length)) * sizeof(float));
  if (!work) abort();  // a few MB at most: out of memory here is out of memory everywhere
  for (int64_t u = from; u < to; u++) unit(a, u, work);
  free(work);
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void units_avx512(const struct decode_attention_args* a, int64_t from, int64_t to) { units(a, from, to); }
__attribute__((target("avx2,fma"))) static void units_avx2(const struct decode_attention_args* a, int64_t from, int64_t to) { units(a, from, to); }
#endif
static void units_generic(const struct decode_attention_args* a, int64_t from, int64_t to) { units(a, from, to); }

void decode_attention_units(const void* args, int64_t from, int64_t to) {
  const struct decode_attention_args* a = (const struct decode_attention_args*)args;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return units_avx512(a, from, to);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return units_avx2(a, from, to);
#endif
  units_generic(a, from, to);
}

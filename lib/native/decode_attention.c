// The attention of a decode step (one query, or a few, per head) over the preallocated KV cache of lib/kv_cache.ts,
// for the package's Glm46vDecodeAttention op (fused_ops.c): softmax(q * scale kᵀ + mask) v over the first `length`
// cached positions, with the G query heads of a kv head reading its keys and values once. In eager TensorFlow it is
// Mul, two BatchMatMulV2, Add, Softmax and reshapes, over all C positions of the cache (its free ones masked out).
// Hand-written because TensorFlow's C kernel API reaches no fused attention kernel.
//
// The arithmetic is the tfjs path's (layers/ops/attention.ts): q scaled first, the scores in float32, the mask added,
// softmax as exp(x - max) / sum; the sums in another order and exp a polynomial (as Eigen's, which TensorFlow's
// Softmax runs), so equal within float32 rounding. The scores are 4 query rows by 4 keys at a time, their 16 dot
// products reduced together; the values are summed a block of keys at a time, in registers. Written with GCC's
// vector extensions and compiled for AVX-512, AVX2 or plain SSE, chosen at run time.
#include "decode_attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

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

// lanes 0-7: a's lanes folded in pairs of halves, lanes 8-15: b's; then 4, 2 and 1 lanes a vector (the 4 levels of
// summing 16 vectors' lanes at once: lane i of the last is the sum of vector i)
#define FOLD(a, b, ...) (__builtin_shufflevector(a, b, __VA_ARGS__))
static inline __attribute__((always_inline)) v16 sum16(const v16* v) {
  v16 c[8], d[4], e[2];
  for (int j = 0; j < 8; j++)
    c[j] = FOLD(v[2 * j], v[2 * j + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           FOLD(v[2 * j], v[2 * j + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int j = 0; j < 4; j++)
    d[j] = FOLD(c[2 * j], c[2 * j + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           FOLD(c[2 * j], c[2 * j + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  for (int j = 0; j < 2; j++)
    e[j] = FOLD(d[2 * j], d[2 * j + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           FOLD(d[2 * j], d[2 * j + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  return FOLD(e[0], e[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         FOLD(e[0], e[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

// scores[r * S + s] = q[r] . keys[s] for r < n, s < S (q [n, Dh], keys [S, Dh]): 4 x 4 tiles where Dh is a multiple of
// 16, the rest one dot product at a time.
static inline __attribute__((always_inline)) void scores_of(const float* q, const float* keys, float* scores, int64_t n, int64_t S, int64_t Dh) {
  const int64_t tiled_n = Dh % 16 ? 0 : n & ~(int64_t)3, tiled_s = Dh % 16 ? 0 : S & ~(int64_t)3;
  for (int64_t r = 0; r < tiled_n; r += 4)
    for (int64_t s = 0; s < tiled_s; s += 4) {
      // the keys are streamed from memory (a decode step's weights have pushed them out of cache): ask for the
      // tile 16 keys on while this one is summed
      for (int64_t i = 0; i < 4 * Dh && s + 16 < S; i += 16) __builtin_prefetch(keys + (s + 16) * Dh + i);
      v16 acc[16] = {{0}};
      for (int64_t d = 0; d < Dh; d += 16) {
        const v16 k[4] = {load16(keys + s * Dh + d), load16(keys + (s + 1) * Dh + d), load16(keys + (s + 2) * Dh + d), load16(keys + (s + 3) * Dh + d)};
        for (int i = 0; i < 4; i++) {
          const v16 qi = load16(q + (r + i) * Dh + d);
          for (int j = 0; j < 4; j++) acc[i * 4 + j] += qi * k[j];
        }
      }
      const v16 t = sum16(acc);
      for (int i = 0; i < 4; i++) memcpy(scores + (r + i) * S + s, (const float*)&t + 4 * i, 4 * sizeof(float));
    }
  for (int64_t r = 0; r < n; r++)
    for (int64_t s = r < tiled_n ? tiled_s : 0; s < S; s++) {
      float sum = 0;
      for (int64_t d = 0; d < Dh; d++) sum += q[r * Dh + d] * keys[s * Dh + d];
      scores[r * S + s] = sum;
    }
}

// exp on 16 lanes: Cephes' expf polynomial, as Eigen's pexp (x = n ln2 + r, |r| <= ln2 / 2, 2^n by the exponent
// bits); 0 below -88 (where expf is 0 or subnormal), the largest float's neighbourhood is not reached (x - max <= 0).
static inline __attribute__((always_inline)) v16 exp16(v16 x) {
  const v16i under = x < -88.0f;
  x = (v16)((v16i)x & ~under);  // those lanes compute exp(0), then are zeroed
  const v16 shift = x * 1.44269504088896341f + 12582912.0f;  // round to nearest through the 2^23 + 2^22 trick
  const v16 n = shift - 12582912.0f;
  const v16 r = x - n * 0.693359375f - n * -2.12194440e-4f;
  v16 y = r * 1.9875691500e-4f + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
  return (v16)((v16i)(y * (v16)bits) & ~under);
}

// x[0..S) = softmax(x[0..S)), S > 0: exp(x - max) / sum, 16 lanes at a time.
static inline __attribute__((always_inline)) void softmax(float* x, int64_t S) {
  const int64_t body = S & ~(int64_t)15;
  float max = -INFINITY, sum = 0;
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
    memcpy(x + s, &e, sizeof e);
    acc += e;
  }
  for (int i = 0; i < 16; i++) sum += acc[i];
  for (int64_t s = body; s < S; s++) sum += (x[s] = expf(x[s] - max));
  for (int64_t s = 0; s < body; s += 16) {
    const v16 p = load16(x + s) / sum;
    memcpy(x + s, &p, sizeof p);
  }
  for (int64_t s = body; s < S; s++) x[s] /= sum;
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
  scores_of(qs, keys, scores, n, S, Dh);
  for (int64_t r = 0; r < n; r++) {
    float* x = scores + r * S;
    if (a->mask) {
      const float* m = a->mask + ((a->Bm == 1 ? 0 : b) * a->L + (r0 + r) % a->L) * S;
      for (int64_t s = 0; s < S; s++) x[s] += m[s];
    }
    softmax(x, S);
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

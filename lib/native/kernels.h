// The vectorised kernels of the package's ops (rows.inc, decode_attention.inc), each compiled for AVX-512, for AVX2 +
// FMA and for the baseline (kernels_avx512.c, kernels_avx2.c, kernels_base.c) and run as the CPU allows. Each is a
// parallel_for body: fn(args, from, to).
#pragma once
#include <stdbool.h>
#include <stdint.h>

enum kernel_isa { ISA_UNKNOWN, ISA_BASE, ISA_AVX2, ISA_AVX512 };

// The instruction set the kernels (and gemv.c) run: the best this CPU has, or the one a spec chose.
enum kernel_isa kernel_isa(void);

// Whether this CPU has more than the baseline (AVX2 with FMA, or AVX-512).
bool kernel_isa_vectorized(void);

// kernel_isa()'s name ("avx512", "avx2" or "base"). Given a name, runs that set from now on if this CPU has it
// (specs: each set against the tfjs ops).
const char* kernel_isa_name(const char* wanted);

struct rms_args {
  const float *x, *w;
  float* y;
  float eps;
  int64_t D;
};

// y = (x * rsqrt(mean(x^2) + eps)) * w on rows [from, to) of D.
void rms_rows(const void* args, int64_t from, int64_t to);

struct rms_grad_args {
  const float *x, *w, *dy;
  float *dx1, *dx2, *dw;  // dx through x * r and through square(x); dw [D]
  float* r;               // [rows]: rsqrt(mean(x^2) + eps), written by rms_grad_rows for rms_grad_cols
  float eps;
  int64_t rows, D;
};

// RMSNorm's backward on rows [from, to): r, dx1 = (dy * w) * r, dx2 = (ds / D) * (x * 2) with
// ds = -(sum((dy * w) * x) / (s^1.5 * 2)), as layers/ops/rms_norm.ts writes it out.
void rms_grad_rows(const void* args, int64_t from, int64_t to);

// Then dw on columns [from, to): the sum over rows of dy * (x * r), in double.
void rms_grad_cols(const void* args, int64_t from, int64_t to);

struct silu_grad_args {
  const float *gate, *up, *dy;
  float *dgate, *dup;
  int64_t n;
};

// The backward of up * silu(gate) on the elements of blocks [from, to) of 16 (the last may be short): with s = sigmoid(gate) and dsilu = dy * up,
// dgate = dsilu * s + (dsilu * gate) * (s * (1 - s)), dup = dy * (gate * s), as layers/ops/activations.ts writes it.
void silu_grad_rows(const void* args, int64_t from, int64_t to);

struct silu_args {
  const float *gate, *up;  // row r of each at r * stride
  float* y;                // [rows, I]
  int64_t I, stride;
};

// y = up * silu(gate) on rows [from, to) (gate and up the two halves of gate_up's rows, or two tensors).
void silu_rows(const void* args, int64_t from, int64_t to);

struct softmax_args {
  float* x;           // [..., S], written over with its softmax
  const float* mask;  // additive, broadcast to x's shape (dims of 1 repeat), or NULL
  int64_t S;
  int rank;             // leading dims of x (at most 7)
  int64_t dims[7];      // x's leading dims
  int64_t mstride[7];   // the mask's row stride along each of them (0 where the mask's dim is 1)
};

// y = softmax(x + mask) along S on rows [from, to).
void softmax_rows(const void* args, int64_t from, int64_t to);

struct heads_args {
  const float* x;            // token rows t = b * L + l; head h of row t at x[t * stride + col0 + h * Dh]
  const float *cos, *sin;    // [B * L, Dh]
  float* out;                // [B, heads, L, Dh]
  int64_t stride, col0, B, L, heads, Dh;
  int64_t R;                 // rotated dims: the first R (interleaved pairs), all Dh (half split), or 0: none
  int half;                  // rotate_half's pairs (d, d + Dh/2) rather than rotate_half_llm's (2j, 2j + 1)
  float scale;               // applied after the rotation where not 1
};

// Tokens [from, to) of x into heads-first out: x * cos + rotate(x) * sin (then * scale), as applyRotation does it.
void heads_rows(const void* args, int64_t from, int64_t to);

// Attention of a decode step's few queries over a preallocated KV cache.
struct decode_attention_args {
  const float* q;       // [B, H, L, Dh]
  const float* keys;    // [B, Hkv, C, Dh], the first `length` positions hold tokens
  const float* values;  // [B, Hkv, C, Dh]
  const float* mask;    // [Bm, 1, L, length], Bm 1 or B, additive; or NULL
  float* out;           // [B, L, H, Dh]
  int64_t B, H, Hkv, L, Dh, C, length, Bm;
  float scale;
  int64_t chunks;  // the G*L query rows of a kv head are split in this many units
};

// Units [from, to) of B * Hkv * chunks: softmax(q * scale kᵀ + mask) v for one chunk of a kv head's query rows.
void decode_attention_units(const void* args, int64_t from, int64_t to);

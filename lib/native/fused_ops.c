// TensorFlow ops of this package's own, registered through TensorFlow's C kernel API (tensorflow/c/ops.h, kernels.h)
// once libtensorflow is loaded, and run by name through tfjs-node's executeOp like any other op. Hand-written because
// eager TensorFlow has no op for them, and each replaces a chain of eager ops that pass over the data and allocate
// their results one by one:
//
// Glm46vAdamW(param, grad, exp_avg, exp_avg_sq: float [n]; decay, one_minus_beta1, beta2, one_minus_beta2,
//             bias_correction2_sqrt, eps, step_size: float scalars) -> nothing; writes param, exp_avg, exp_avg_sq in place:
//   p = p * decay; m = m + (g - m) * (1 - b1); v = v * b2 + (g * (1 - b2)) * g;
//   p = p - step_size * (m / (sqrt(v) / bias_correction2_sqrt + eps))
// per element in float32, the operations and order of train/adamw.ts's tfjs path (built with -ffp-contract=off, so the
// results are the same bits). 14 eager ops a parameter there: 680-700 ms a step for the benchmark model's 140.7 M
// parameters, against torch's 313 ms of in-place passes; one pass here.
//
// Glm46vRmsNorm(x: float [..., D], weight: float [D], eps: float [1]) -> float [..., D]:
//   y = (x * rsqrt(mean(x^2) + eps)) * weight, the row's sum of squares in double. One op for 6 eager ones (Square,
//   Mean, Add, Rsqrt, Mul, Mul), at inference (layers/ops/rms_norm.ts).
//
// Glm46vRmsNormGrad(x: float [..., D], weight: float [D], dy: float [..., D], eps: float [1]) -> dx through x * r,
//   dx through square(x) [..., D], dweight [D]: RMSNorm's written-out backward (layers/ops/rms_norm.ts) in one op
//   for its 15 (the row sums and dweight's column sums in double). Glm46vSiluMulGrad(gate, up, dy) -> dgate, dup:
//   the SwiGLU product's written-out backward (layers/ops/activations.ts) in one op for its 10. Within float32
//   rounding of those ops, so the written-gradient spec, which compares them with autodiff bit for bit, turns them off.
//
// Glm46vSoftmax(x: float [..., S]) and Glm46vMaskedSoftmax(x, mask: float, broadcast to x) -> nothing: softmax(x +
//   mask) along the last axis, written over x in place (the attention's fresh scores, which nothing else reads: a new
//   buffer of their size costs its page faults each time). One op for Add and Softmax in the attention of a prefill
//   and of the vision tower, at inference (layers/ops/attention.ts, block_diagonal_attention.ts).
//
// Glm46vSiluMul(gate_up: float [..., 2I]) -> float [..., I]: up * (gate * sigmoid(gate)) with gate the first half of
//   each row and up the second, sigmoid(g) = 1 / (1 + exp(-g)). One op for SplitV, Sigmoid, Mul, Mul, at inference
//   (the text MLP, models/glm4v/text.ts); Glm46vSiluMulPair(gate, up: float [..., I]) the same from two tensors (the
//   vision MLP, layers/ops/activations.ts).
//
// Glm46vLinear(x: float [M, K], weight: float [N, K], bias: float [N]) -> float [M, N]: x weightᵀ + bias, and
//   Glm46vLinearNoBias(x, weight) -> x weightᵀ: the one-token product of a decode step (layers/linear.ts, at
//   inference, for a few rows of x), in gemv.c. One op for MatMul (and Add).
//
// Glm46vDecodeAttention(q: float [B, H, L, Dh], keys, values: float [B, Hkv, C, Dh], params: float [2] = {scale,
//   length}) -> float [B, L, H, Dh], and Glm46vDecodeAttentionMasked(..., mask: float [1 or B, 1, L, length]):
//   softmax(q * scale kᵀ + mask) v over the first `length` positions of lib/kv_cache.ts's preallocated cache, for a
//   decode step's few queries (layers/ops/attention.ts), in decode_attention.inc. One op for Mul, two BatchMatMulV2,
//   Add, Softmax and the reshapes between them, and it reads `length` positions where they read all C.
//
// Glm46vQkvHeads(q: float [B * L, Hq * Dh], k, v: float [B * L, Hk * Dh], cos, sin: float [B, L, 1, Dh], rotary_dim:
//   float [1]) -> q, k, v heads-first, [B, H, L, Dh]: the text attention's q and k as their projections give them,
//   rotated as layers/ops/rotation.ts's applyRotation does (x * cos + rotate(x) * sin, rotate_half_llm on the pairs of
//   the first rotary_dim dims, zero after them), and v, laid out for the attention: the same float32 operations, so
//   the same bits. One op for the rotations (Mul, MatMul, Mul, Add each), the transposes and the reshapes
//   (models/glm4v/text.ts, at inference).
//
// Glm46vVisionHeads(qkv: float [N, 3 * H * Dh], cos, sin: float [N, Dh], params: float [2] = {H, scale}) -> q, k, v
//   [H, N, Dh]: the vision attention's rows [q | k | v] split, q and k rotated by rotate_half on the full head dim and
//   q then scaled, as the tfjs path does (SplitV, two rotations, three transposes, Mul), with the same bits
//   (models/glm4v/vision.ts, at inference).
//
// Glm46vBf16Rows(out: float [rows, e], bits: int32 [e / 2], row: float [1]) -> nothing: row `row` of out written in
//   place with the bfloat16 values whose bytes `bits` holds (little-endian pairs), each widened exactly to float32
//   (its 16 bits above 16 zero bits). One pass where Bitcast, Cast and InplaceUpdate made three over a checkpoint
//   being loaded (lib/kernels/tf_bf16.ts).
//
// Glm46vWritePositions(buf: float [B, H, C, D], x: float [B, H, L, D], at: float [1]) -> nothing: x written into buf
//   at positions at..at+L-1, in place (lib/kernels/tf_inplace.ts, the preallocated KV cache). One op for two
//   reshapes, a row-index tensor and InplaceUpdate.
//
// The vectorised kernels are in rows.inc, decode_attention.inc (kernels.h) and gemv.c; they run on a pool of threads of
// the package's own (parallel.c).
//
// TensorFlow's C API is reached through tf_kernel_api.h (looked up with dlsym: the addon links nothing of TensorFlow).
#include <math.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemv.h"
#include "kernels.h"
#include "parallel.h"
#include "tf_kernel_api.h"

#define ADAMW_INPUTS 11
static const char* const ADAMW_NAMES[ADAMW_INPUTS] = {
    "param: float", "grad: float", "exp_avg: float", "exp_avg_sq: float", "decay: float", "one_minus_beta1: float",
    "beta2: float", "one_minus_beta2: float", "bias_correction2_sqrt: float", "eps: float", "step_size: float"};
static const char* const RMS_NAMES[3] = {"x: float", "weight: float", "eps: float"};
static const char* const SILU_NAMES[1] = {"gate_up: float"};
static const char* const SILU2_NAMES[2] = {"gate: float", "up: float"};
static const char* const RMS_GRAD_NAMES[4] = {"x: float", "weight: float", "dy: float", "eps: float"};
static const char* const RMS_GRAD_OUTPUTS[3] = {"dx_scaled: float", "dx_squared: float", "dweight: float"};
static const char* const SILU_GRAD_NAMES[3] = {"gate: float", "up: float", "dy: float"};
static const char* const SILU_GRAD_OUTPUTS[2] = {"dgate: float", "dup: float"};
static const char* const SOFTMAX_NAMES[2] = {"x: float", "mask: float"};  // unmasked: the first
static const char* const ATTENTION_NAMES[5] = {"q: float", "keys: float", "values: float", "params: float", "mask: float"};  // unmasked: the first 4
static const char* const QKV_NAMES[6] = {"q: float", "k: float", "v: float", "cos: float", "sin: float", "rotary_dim: float"};
static const char* const VISION_QKV_NAMES[4] = {"qkv: float", "cos: float", "sin: float", "params: float"};
static const char* const QKV_OUTPUTS[3] = {"q_heads: float", "k_heads: float", "v_heads: float"};
static const char* const WRITE_NAMES[3] = {"buf: float", "x: float", "at: float"};
static const char* const BF16_NAMES[3] = {"out: float", "bits: int32", "row: float"};
static const char* const LINEAR_NAMES[3] = {"x: float", "weight: float", "bias: float"};  // NoBias: the first 2

struct adamw_args {
  float *p, *m, *v;
  const float* g;
  float decay, omb1, b2, omb2, bc2s, eps, step;
};

static void adamw_span(const void* args, int64_t from, int64_t to) {
  const struct adamw_args* a = (const struct adamw_args*)args;
  for (int64_t i = from; i < to; i++) {
    const float g = a->g[i];
    const float decayed = a->p[i] * a->decay;
    const float m = a->m[i] + (g - a->m[i]) * a->omb1;
    const float v = a->v[i] * a->b2 + (g * a->omb2) * g;
    const float denom = sqrtf(v) / a->bc2s + a->eps;
    a->p[i] = decayed - a->step * (m / denom);
    a->m[i] = m;
    a->v[i] = v;
  }
}

static void adamw_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor* in[ADAMW_INPUTS] = {0};
  TF_Status* status = tf.NewStatus();
  int64_t dims[8], n = 1;
  const int rank = input_dims(ctx, 0, dims, status);
  for (int k = 0; k < rank; k++) n *= dims[k];
  const int64_t counts[ADAMW_INPUTS] = {n, n, n, n, 1, 1, 1, 1, 1, 1, 1};
  if (rank >= 0 && get_inputs(ctx, "Glm46vAdamW", ADAMW_INPUTS, counts, in, status)) {
    const float* c[ADAMW_INPUTS];
    for (int k = 0; k < ADAMW_INPUTS; k++) c[k] = (const float*)tf.TensorData(in[k]);
    const struct adamw_args a = {(float*)c[0], (float*)c[2], (float*)c[3], c[1], *c[4], *c[5], *c[6], *c[7], *c[8], *c[9], *c[10]};
    parallel_for(n, 1 << 16, adamw_span, &a);  // a bias of 1024 runs on this thread
  } else if (rank < 0) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vAdamW: param must have at most 8 dims");
    tf.OpKernelContext_Failure(ctx, status);
  }
  for (int k = 0; k < ADAMW_INPUTS; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void rms_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[3] = {0}, *out = NULL;
  TF_Status* status = tf.NewStatus();
  int64_t dims[8], n = 1;
  const int rank = input_dims(ctx, 0, dims, status);
  for (int k = 0; k < rank; k++) n *= dims[k];
  const int64_t D = rank > 0 ? dims[rank - 1] : 0, counts[3] = {n, D, 1};
  if (rank < 1 || D < 1) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vRmsNorm: x must have a last axis (and at most 8 dims)");
    tf.OpKernelContext_Failure(ctx, status);
  } else if (get_inputs(ctx, "Glm46vRmsNorm", 3, counts, in, status)) {
    out = tf.AllocateOutput(ctx, 0, TF_FLOAT, dims, rank, (size_t)n * sizeof(float), status);
    if (tf.GetCode(status) == TF_OK) {
      const struct rms_args a = {(const float*)tf.TensorData(in[0]), (const float*)tf.TensorData(in[1]), (float*)tf.TensorData(out),
                                 *(const float*)tf.TensorData(in[2]), D};
      parallel_for(n / D, (1 << 16) / D + 1, rms_rows, &a);
    } else {
      tf.OpKernelContext_Failure(ctx, status);
    }
  }
  if (out) tf.DeleteTensor(out);
  for (int k = 0; k < 3; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void silu_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[2] = {0}, *out = NULL;
  TF_Status* status = tf.NewStatus();
  const int n_in = tf.NumInputs(ctx);  // 1: gate_up's halves; 2: gate and up
  int64_t dims[8], dims2[8], n = 1;
  const int rank = input_dims(ctx, 0, dims, status);
  for (int k = 0; k < rank; k++) n *= dims[k];
  bool fits = rank >= 1 && dims[rank - 1] > 0 && (n_in == 2 || dims[rank - 1] % 2 == 0);
  if (fits && n_in == 2) {
    fits = input_dims(ctx, 1, dims2, status) == rank;
    for (int k = 0; fits && k < rank; k++) fits = dims2[k] == dims[k];
  }
  if (!fits) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, n_in == 1 ? "Glm46vSiluMul: the last axis of gate_up must be even (and at most 8 dims)"
                                                        : "Glm46vSiluMul: gate and up must have one shape (of at most 8 dims)");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const int64_t counts[2] = {n, n};
    if (get_inputs(ctx, "Glm46vSiluMul", n_in, counts, in, status)) {
      const int64_t I = n_in == 1 ? dims[rank - 1] / 2 : dims[rank - 1];
      dims[rank - 1] = I;
      out = tf.AllocateOutput(ctx, 0, TF_FLOAT, dims, rank, (size_t)(n_in == 1 ? n / 2 : n) * sizeof(float), status);
      if (tf.GetCode(status) == TF_OK) {
        const float* x = (const float*)tf.TensorData(in[0]);
        const struct silu_args a = n_in == 1 ? (struct silu_args){x, x + I, (float*)tf.TensorData(out), I, 2 * I}
                                             : (struct silu_args){x, (const float*)tf.TensorData(in[1]), (float*)tf.TensorData(out), I, I};
        parallel_for(n_in == 1 ? n / (2 * I) : n / I, (1 << 16) / I + 1, silu_rows, &a);
      } else {
        tf.OpKernelContext_Failure(ctx, status);
      }
    }
  }
  if (out) tf.DeleteTensor(out);
  for (int k = 0; k < 2; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void linear_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[3] = {0}, *out = NULL;
  TF_Status* status = tf.NewStatus();
  const int n_in = tf.NumInputs(ctx);  // 3 with a bias, 2 without
  int64_t xd[8], wd[8], bd[8] = {0};
  const bool ranks = input_dims(ctx, 0, xd, status) == 2 && input_dims(ctx, 1, wd, status) == 2 && (n_in == 2 || input_dims(ctx, 2, bd, status) == 1);
  if (!ranks || xd[1] != wd[1] || (n_in == 3 && bd[0] != wd[0])) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vLinear: x [M, K], weight [N, K] and bias [N] expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const int64_t M = xd[0], N = wd[0], K = wd[1], counts[3] = {M * K, N * K, N};
    if (get_inputs(ctx, "Glm46vLinear", n_in, counts, in, status)) {
      const int64_t dims[2] = {M, N};
      out = tf.AllocateOutput(ctx, 0, TF_FLOAT, dims, 2, (size_t)(M * N) * sizeof(float), status);
      if (tf.GetCode(status) == TF_OK) {
        const struct gemv_args a = {(const float*)tf.TensorData(in[0]), (const float*)tf.TensorData(in[1]),
                                    in[2] ? (const float*)tf.TensorData(in[2]) : NULL, (float*)tf.TensorData(out), M, N, K};
        const int64_t blocks = (N + GEMV_BLOCK - 1) / GEMV_BLOCK;
        parallel_for(blocks, (1 << 15) / (GEMV_BLOCK * (K > 0 ? K : 1)) + 1, gemv_blocks, &a);
      } else {
        tf.OpKernelContext_Failure(ctx, status);
      }
    }
  }
  if (out) tf.DeleteTensor(out);
  for (int k = 0; k < 3; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void attention_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[5] = {0}, *out = NULL;
  TF_Status* status = tf.NewStatus();
  const int n_in = tf.NumInputs(ctx);  // 5 with a mask, 4 without
  int64_t qd[8], kd[8], vd[8], pd[8], md[8] = {0};
  const bool ranks = input_dims(ctx, 0, qd, status) == 4 && input_dims(ctx, 1, kd, status) == 4 && input_dims(ctx, 2, vd, status) == 4 &&
                     input_dims(ctx, 3, pd, status) == 1 && pd[0] == 2 && (n_in == 4 || input_dims(ctx, 4, md, status) == 4);
  const int64_t B = qd[0], H = qd[1], L = qd[2], Dh = qd[3], Hkv = kd[1], C = kd[2];
  bool fits = ranks && kd[0] == B && Hkv > 0 && H % Hkv == 0 && kd[3] == Dh && vd[0] == B && vd[1] == Hkv && vd[2] == C && vd[3] == Dh;
  TF_Tensor* params = NULL;
  float scale = 0;
  int64_t length = 0;
  if (fits) {
    tf.GetInput(ctx, 3, &params, status);
    if (tf.GetCode(status) == TF_OK && tf.TensorType(params) == TF_FLOAT) {
      const float* p = (const float*)tf.TensorData(params);
      scale = p[0], length = (int64_t)p[1];
      fits = (float)length == p[1] && length >= 1 && length <= C;
    }
    if (params) tf.DeleteTensor(params);
  }
  fits = fits && (n_in == 4 || ((md[0] == 1 || md[0] == B) && md[1] == 1 && md[2] == L && md[3] == length));
  if (!fits) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT,
                 "Glm46vDecodeAttention: q [B, H, L, Dh], keys and values [B, Hkv, C, Dh], params {scale, length <= C} "
                 "and mask [1 or B, 1, L, length] expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const int64_t counts[5] = {B * H * L * Dh, B * Hkv * C * Dh, B * Hkv * C * Dh, 2, md[0] * L * length};
    if (get_inputs(ctx, "Glm46vDecodeAttention", n_in, counts, in, status)) {
      const int64_t dims[4] = {B, L, H, Dh};
      out = tf.AllocateOutput(ctx, 0, TF_FLOAT, dims, 4, (size_t)(B * L * H * Dh) * sizeof(float), status);
      if (tf.GetCode(status) == TF_OK) {
        // enough units for every thread: a kv head's G * L query rows in chunks when B * Hkv is fewer than the threads
        const int64_t heads = B * Hkv, rows = H / Hkv * L, want = (thread_count() + heads - 1) / heads;
        const struct decode_attention_args a = {
            (const float*)tf.TensorData(in[0]), (const float*)tf.TensorData(in[1]), (const float*)tf.TensorData(in[2]),
            in[4] ? (const float*)tf.TensorData(in[4]) : NULL, (float*)tf.TensorData(out), B, H, Hkv, L, Dh, C, length,
            md[0], scale, want < rows ? want : rows};
        parallel_for(heads * a.chunks, 1, decode_attention_units, &a);
      } else {
        tf.OpKernelContext_Failure(ctx, status);
      }
    }
  }
  if (out) tf.DeleteTensor(out);
  for (int k = 0; k < 5; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

// Writes heads-first out[o] (of dims[o], rank `rank`) from x for o < n; false with the op failed where TensorFlow refuses.
static bool heads_outputs(TF_OpKernelContext* ctx, int n, struct heads_args* args, const int64_t (*dims)[4], int rank, TF_Tensor** out, TF_Status* status) {
  for (int o = 0; o < n; o++) {
    const int64_t count = args[o].B * args[o].heads * args[o].L * args[o].Dh;
    out[o] = tf.AllocateOutput(ctx, o, TF_FLOAT, dims[o], rank, (size_t)count * sizeof(float), status);
    if (tf.GetCode(status) != TF_OK) {
      tf.OpKernelContext_Failure(ctx, status);
      return false;
    }
    args[o].out = (float*)tf.TensorData(out[o]);
    const int64_t T = args[o].B * args[o].L;
    parallel_for(T, (1 << 14) / (args[o].heads * args[o].Dh) + 1, heads_rows, &args[o]);
  }
  return true;
}

static void qkv_heads_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[6] = {0}, *out[3] = {0};
  TF_Status* status = tf.NewStatus();
  int64_t xd[3][8], cd[8];
  const int crank = input_dims(ctx, 3, cd, status);
  bool fits = crank >= 3 && crank <= 8;
  for (int k = 0; k < 3; k++) fits = fits && input_dims(ctx, k, xd[k], status) == 2;
  const int64_t B = fits ? cd[0] : 0, L = fits ? cd[1] : 0, Dh = fits ? cd[crank - 1] : 0;
  for (int k = 2; fits && k < crank - 1; k++) fits = cd[k] == 1;
  for (int k = 0; fits && k < 3; k++) fits = Dh >= 2 && Dh % 2 == 0 && xd[k][0] == B * L && xd[k][1] % Dh == 0;
  if (!fits) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vQkvHeads: q, k, v [B * L, heads * Dh] and cos, sin [B, L, 1, Dh] expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const int64_t counts[6] = {B * L * xd[0][1], B * L * xd[1][1], B * L * xd[2][1], B * L * Dh, B * L * Dh, 1};
    if (get_inputs(ctx, "Glm46vQkvHeads", 6, counts, in, status)) {
      const float R = *(const float*)tf.TensorData(in[5]);
      const float *c = (const float*)tf.TensorData(in[3]), *sn = (const float*)tf.TensorData(in[4]);
      struct heads_args args[3];
      int64_t dims[3][4];
      for (int o = 0; o < 3; o++) {
        const int64_t heads = xd[o][1] / Dh;
        args[o] = (struct heads_args){(const float*)tf.TensorData(in[o]), c, sn, NULL, xd[o][1], 0, B, L, heads, Dh, o < 2 ? (int64_t)R : 0, 0, 1.0f};
        dims[o][0] = B, dims[o][1] = heads, dims[o][2] = L, dims[o][3] = Dh;
      }
      heads_outputs(ctx, 3, args, (const int64_t(*)[4])dims, 4, out, status);
    }
  }
  for (int o = 0; o < 3; o++) if (out[o]) tf.DeleteTensor(out[o]);
  for (int k = 0; k < 6; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void vision_heads_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[4] = {0}, *out[3] = {0};
  TF_Status* status = tf.NewStatus();
  int64_t xd[8], cd[8], pd[8];
  const bool ranks = input_dims(ctx, 0, xd, status) == 2 && input_dims(ctx, 1, cd, status) == 2 && input_dims(ctx, 3, pd, status) == 1 && pd[0] == 2;
  const int64_t N = xd[0], Dh = cd[1];
  if (!ranks || cd[0] != N || Dh < 2 || Dh % 2 || xd[1] % (3 * Dh)) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vVisionHeads: qkv [N, 3 * heads * Dh], cos, sin [N, Dh] and params {heads, scale} expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const int64_t counts[4] = {N * xd[1], N * Dh, N * Dh, 2};
    if (get_inputs(ctx, "Glm46vVisionHeads", 4, counts, in, status)) {
      const float* p = (const float*)tf.TensorData(in[3]);
      const int64_t H = xd[1] / (3 * Dh);
      if ((float)H != p[0]) {
        tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vVisionHeads: qkv's width is not 3 * heads * Dh for the heads given");
        tf.OpKernelContext_Failure(ctx, status);
      } else {
        struct heads_args args[3];
        int64_t dims[3][4];
        for (int o = 0; o < 3; o++) {
          args[o] = (struct heads_args){(const float*)tf.TensorData(in[0]), (const float*)tf.TensorData(in[1]), (const float*)tf.TensorData(in[2]),
                                        NULL, xd[1], o * H * Dh, 1, N, H, Dh, o < 2 ? Dh : 0, 1, o == 0 ? p[1] : 1.0f};
          dims[o][0] = H, dims[o][1] = N, dims[o][2] = Dh;
        }
        heads_outputs(ctx, 3, args, (const int64_t(*)[4])dims, 3, out, status);
      }
    }
  }
  for (int o = 0; o < 3; o++) if (out[o]) tf.DeleteTensor(out[o]);
  for (int k = 0; k < 4; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void write_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor* in[3] = {0};
  TF_Status* status = tf.NewStatus();
  int64_t bd[8], xd[8];
  const bool ranks = input_dims(ctx, 0, bd, status) == 4 && input_dims(ctx, 1, xd, status) == 4;
  const int64_t B = bd[0], H = bd[1], C = bd[2], D = bd[3], L = xd[2];
  if (!ranks || xd[0] != B || xd[1] != H || xd[3] != D) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vWritePositions: buf [B, H, C, D] and x [B, H, L, D] expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const int64_t counts[3] = {B * H * C * D, B * H * L * D, 1};
    if (get_inputs(ctx, "Glm46vWritePositions", 3, counts, in, status)) {
      const float at_f = *(const float*)tf.TensorData(in[2]);
      const int64_t at = (int64_t)at_f;
      if ((float)at != at_f || at < 0 || at + L > C) {
        tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vWritePositions: positions at..at+L-1 must lie in the buffer");
        tf.OpKernelContext_Failure(ctx, status);
      } else {
        float* buf = (float*)tf.TensorData(in[0]);
        const float* x = (const float*)tf.TensorData(in[1]);
        for (int64_t bh = 0; bh < B * H; bh++) memcpy(buf + (bh * C + at) * D, x + bh * L * D, (size_t)(L * D) * sizeof(float));
      }
    }
  }
  for (int k = 0; k < 3; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void softmax_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor* in[2] = {0};
  TF_Status* status = tf.NewStatus();
  const int n_in = tf.NumInputs(ctx);  // 2 with a mask
  int64_t xd[8], md[8], n = 1;
  const int rank = input_dims(ctx, 0, xd, status), mrank = n_in == 2 ? input_dims(ctx, 1, md, status) : 0;
  for (int k = 0; k < rank; k++) n *= xd[k];
  bool fits = rank >= 1 && xd[rank - 1] > 0 && (n_in == 1 || (mrank >= 1 && mrank <= rank && md[mrank - 1] == xd[rank - 1]));
  struct softmax_args a = {.S = rank >= 1 ? xd[rank - 1] : 0, .rank = rank - 1};
  int64_t mcount = 1;
  // the mask's dims right-aligned with x's: each 1 or x's; its row stride along each of x's leading dims
  for (int k = rank - 2, stride = 1; fits && k >= 0; k--) {
    const int mk = k - (rank - mrank);
    const int64_t m = n_in == 2 && mk >= 0 ? md[mk] : 1;
    fits = m == 1 || m == xd[k];
    a.dims[k] = xd[k];
    a.mstride[k] = m == 1 ? 0 : stride;
    stride *= m;
    mcount *= m;
  }
  if (!fits) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vSoftmax: x [..., S] and a mask [..., S] that broadcasts to it expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const int64_t counts[2] = {n, mcount * a.S};
    if (get_inputs(ctx, "Glm46vSoftmax", n_in, counts, in, status)) {
      a.x = (float*)tf.TensorData(in[0]), a.mask = n_in == 2 ? (const float*)tf.TensorData(in[1]) : NULL;
      parallel_for(n / a.S, (1 << 15) / a.S + 1, softmax_rows, &a);
    }
  }
  for (int k = 0; k < 2; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void rms_grad_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[4] = {0}, *out[3] = {0};
  TF_Status* status = tf.NewStatus();
  int64_t dims[8], dyd[8], n = 1;
  const int rank = input_dims(ctx, 0, dims, status);
  bool fits = rank >= 1 && input_dims(ctx, 2, dyd, status) == rank;
  for (int k = 0; k < rank; k++) n *= dims[k], fits = fits && dyd[k] == dims[k];
  const int64_t D = fits ? dims[rank - 1] : 0, counts[4] = {n, D, n, 1};
  float* r = NULL;
  if (!fits || D < 1) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vRmsNormGrad: x and dy [..., D] of one shape, weight [D] and eps expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else if (get_inputs(ctx, "Glm46vRmsNormGrad", 4, counts, in, status)) {
    for (int o = 0; o < 3 && tf.GetCode(status) == TF_OK; o++)
      out[o] = tf.AllocateOutput(ctx, o, TF_FLOAT, o < 2 ? dims : &dims[rank - 1], o < 2 ? rank : 1, (size_t)(o < 2 ? n : D) * sizeof(float), status);
    const int64_t rows = n / D;
    if (tf.GetCode(status) == TF_OK && !(r = malloc((size_t)(rows > 0 ? rows : 1) * sizeof(float))))
      tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vRmsNormGrad: out of memory");
    if (tf.GetCode(status) == TF_OK) {
      const struct rms_grad_args a = {(const float*)tf.TensorData(in[0]), (const float*)tf.TensorData(in[1]), (const float*)tf.TensorData(in[2]),
                                      (float*)tf.TensorData(out[0]), (float*)tf.TensorData(out[1]), (float*)tf.TensorData(out[2]), r,
                                      *(const float*)tf.TensorData(in[3]), rows, D};
      parallel_for(rows, (1 << 15) / D + 1, rms_grad_rows, &a);
      parallel_for((D + 15) / 16, 1, rms_grad_cols, &a);
    } else {
      tf.OpKernelContext_Failure(ctx, status);
    }
  }
  free(r);
  for (int o = 0; o < 3; o++) if (out[o]) tf.DeleteTensor(out[o]);
  for (int k = 0; k < 4; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static void silu_grad_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[3] = {0}, *out[2] = {0};
  TF_Status* status = tf.NewStatus();
  int64_t dims[8], other[8], n = 1;
  const int rank = input_dims(ctx, 0, dims, status);
  bool fits = rank >= 0;
  for (int k = 1; k < 3 && fits; k++) {
    fits = input_dims(ctx, k, other, status) == rank;
    for (int d = 0; fits && d < rank; d++) fits = other[d] == dims[d];
  }
  for (int k = 0; k < rank; k++) n *= dims[k];
  const int64_t counts[3] = {n, n, n};
  if (!fits) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vSiluMulGrad: gate, up and dy must have one shape (of at most 8 dims)");
    tf.OpKernelContext_Failure(ctx, status);
  } else if (get_inputs(ctx, "Glm46vSiluMulGrad", 3, counts, in, status)) {
    for (int o = 0; o < 2 && tf.GetCode(status) == TF_OK; o++) out[o] = tf.AllocateOutput(ctx, o, TF_FLOAT, dims, rank, (size_t)n * sizeof(float), status);
    if (tf.GetCode(status) == TF_OK) {
      const struct silu_grad_args a = {(const float*)tf.TensorData(in[0]), (const float*)tf.TensorData(in[1]), (const float*)tf.TensorData(in[2]),
                                       (float*)tf.TensorData(out[0]), (float*)tf.TensorData(out[1]), n};
      parallel_for((n + 15) / 16, 1 << 11, silu_grad_rows, &a);
    } else {
      tf.OpKernelContext_Failure(ctx, status);
    }
  }
  for (int o = 0; o < 2; o++) if (out[o]) tf.DeleteTensor(out[o]);
  for (int k = 0; k < 3; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

struct bf16_args {
  const uint16_t* src;
  uint32_t* dst;
};

typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));

static void bf16_span(const void* args, int64_t from, int64_t to) {
  const struct bf16_args* a = (const struct bf16_args*)args;
  int64_t i = from;
  for (; i + 8 <= to; i += 8) {  // 8 at a time in the baseline's vectors: the loop is bound by memory
    u16x8 v;
    memcpy(&v, a->src + i, sizeof v);
    const u32x8 w = __builtin_convertvector(v, u32x8) << 16;
    memcpy(a->dst + i, &w, sizeof w);
  }
  for (; i < to; i++) a->dst[i] = (uint32_t)a->src[i] << 16;
}

static void bf16_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor* in[3] = {0};
  TF_Status* status = tf.NewStatus();
  int64_t od[8], bd[8];
  const bool ranks = input_dims(ctx, 0, od, status) == 2 && input_dims(ctx, 1, bd, status) == 1;
  const int64_t rows = od[0], e = od[1];
  bool fits = ranks && bd[0] * 2 == e;
  for (int k = 0; fits && k < 3; k++) {
    tf.GetInput(ctx, k, &in[k], status);
    const int64_t want = k == 0 ? rows * e : k == 1 ? e / 2 : 1;
    fits = tf.GetCode(status) == TF_OK && tf.TensorType(in[k]) == (k == 1 ? TF_INT32 : TF_FLOAT) && tf.TensorElementCount(in[k]) == want;
  }
  const float row_f = fits ? *(const float*)tf.TensorData(in[2]) : -1;
  const int64_t row = (int64_t)row_f;
  if (!fits || (float)row != row_f || row < 0 || row >= rows) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vBf16Rows: out [rows, e], bits int32 [e / 2] and a row of out expected");
    tf.OpKernelContext_Failure(ctx, status);
  } else {
    const struct bf16_args a = {(const uint16_t*)tf.TensorData(in[1]), (uint32_t*)tf.TensorData(in[0]) + row * e};
    parallel_for(e, 1 << 18, bf16_span, &a);
  }
  for (int k = 0; k < 3; k++) if (in[k]) tf.DeleteTensor(in[k]);
  tf.DeleteStatus(status);
}

static const char* const Y[1] = {"y: float"}, *const OUT[1] = {"out: float"};

// The ops, in the order they are registered. AdamW, the softmaxes, WritePositions and Bf16Rows write their inputs: stateful, so never pruned,
// merged or cached.
static const struct op_spec {
  const char* name;
  const char* const* inputs;
  int n_in;
  const char* const* outputs;
  int n_out;
  bool stateful;
  void (*compute)(void*, TF_OpKernelContext*);
} OPS[] = {
    {"Glm46vAdamW", ADAMW_NAMES, ADAMW_INPUTS, NULL, 0, true, adamw_compute},
    {"Glm46vRmsNorm", RMS_NAMES, 3, Y, 1, false, rms_compute},
    {"Glm46vRmsNormGrad", RMS_GRAD_NAMES, 4, RMS_GRAD_OUTPUTS, 3, false, rms_grad_compute},
    {"Glm46vSiluMul", SILU_NAMES, 1, Y, 1, false, silu_compute},
    {"Glm46vSiluMulPair", SILU2_NAMES, 2, Y, 1, false, silu_compute},
    {"Glm46vSiluMulGrad", SILU_GRAD_NAMES, 3, SILU_GRAD_OUTPUTS, 2, false, silu_grad_compute},
    {"Glm46vSoftmax", SOFTMAX_NAMES, 1, NULL, 0, true, softmax_compute},
    {"Glm46vMaskedSoftmax", SOFTMAX_NAMES, 2, NULL, 0, true, softmax_compute},
    {"Glm46vLinear", LINEAR_NAMES, 3, Y, 1, false, linear_compute},
    {"Glm46vLinearNoBias", LINEAR_NAMES, 2, Y, 1, false, linear_compute},
    {"Glm46vDecodeAttention", ATTENTION_NAMES, 4, OUT, 1, false, attention_compute},
    {"Glm46vDecodeAttentionMasked", ATTENTION_NAMES, 5, OUT, 1, false, attention_compute},
    {"Glm46vQkvHeads", QKV_NAMES, 6, QKV_OUTPUTS, 3, false, qkv_heads_compute},
    {"Glm46vVisionHeads", VISION_QKV_NAMES, 4, QKV_OUTPUTS, 3, false, vision_heads_compute},
    {"Glm46vWritePositions", WRITE_NAMES, 3, NULL, 0, true, write_compute},
    {"Glm46vBf16Rows", BF16_NAMES, 3, NULL, 0, true, bf16_compute},
};
enum { N_OPS = sizeof OPS / sizeof OPS[0] };

// registerFusedOps(): registers the ops and their CPU kernels with the loaded TensorFlow, once; returns null, or why not.
static napi_value RegisterFusedOps(napi_env env, napi_callback_info info) {
  (void)info;
  static bool done = false;
  static char error[256];
  napi_value result;
  if (!done) {
    done = true;
    const char* missing = tf_resolve();
    if (missing) snprintf(error, sizeof error, "TensorFlow has no %s", missing);
    for (int k = 0; !missing && k < N_OPS; k++) {
      const struct op_spec* o = &OPS[k];
      if (!register_op(o->name, o->inputs, o->n_in, o->outputs, o->n_out, o->stateful, o->compute, error, sizeof error)) break;
    }
  }
  if (error[0]) napi_create_string_utf8(env, error, NAPI_AUTO_LENGTH, &result);
  else napi_get_null(env, &result);
  return result;
}

// fusedOps(): the names of the ops this build registers (the package checks that it has every op it calls: a build
// older than the package's sources has fewer).
static napi_value FusedOps(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value list, name;
  napi_create_array_with_length(env, N_OPS, &list);
  for (int k = 0; k < N_OPS; k++) {
    napi_create_string_utf8(env, OPS[k].name, NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, list, k, name);
  }
  return list;
}

// kernelsVectorized(): whether the kernels have a vector path on this CPU (without one, TensorFlow's MatMul is faster
// than Glm46vLinear).
static napi_value KernelsVectorized(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, kernel_isa_vectorized(), &result);
  return result;
}

// kernelIsa(name?): the instruction set the kernels run ("avx512", "avx2", "base"); a name makes them run that one if
// this CPU has it (specs only).
static napi_value KernelIsa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, result;
  char name[16] = "";
  napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
  if (argc > 0) napi_get_value_string_utf8(env, arg, name, sizeof name, NULL);
  napi_create_string_utf8(env, kernel_isa_name(name[0] ? name : NULL), NAPI_AUTO_LENGTH, &result);
  return result;
}

napi_value fused_ops_init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[4] = {
      {"registerFusedOps", NULL, RegisterFusedOps, NULL, NULL, NULL, napi_default, NULL},
      {"fusedOps", NULL, FusedOps, NULL, NULL, NULL, napi_default, NULL},
      {"kernelsVectorized", NULL, KernelsVectorized, NULL, NULL, NULL, napi_default, NULL},
      {"kernelIsa", NULL, KernelIsa, NULL, NULL, NULL, napi_default, NULL}};
  napi_define_properties(env, exports, 4, props);
  return exports;
}

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
// Glm46vRmsNorm(x: float [..., D], weight: float [D], eps: float scalar) -> float [..., D]:
//   y = (x * rsqrt(mean(x^2) + eps)) * weight, the row's sum of squares in double. One op for 6 eager ones (Square,
//   Mean, Add, Rsqrt, Mul, Mul), at inference (layers/ops/rms_norm.ts).
//
// Glm46vSiluMul(gate_up: float [..., 2I]) -> float [..., I]: up * (gate * sigmoid(gate)) with gate the first half of
//   each row and up the second, sigmoid(g) = 1 / (1 + exp(-g)). One op for SplitV, Sigmoid, Mul, Mul, at inference
//   (the text MLP, models/glm4v/text.ts).
//
// The TensorFlow functions are looked up with dlsym: the addon links nothing of TensorFlow.
#include <dlfcn.h>
#include <math.h>
#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct TF_Status TF_Status;
typedef struct TF_Tensor TF_Tensor;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_KernelBuilder TF_KernelBuilder;
typedef struct TF_OpKernelConstruction TF_OpKernelConstruction;
typedef struct TF_OpKernelContext TF_OpKernelContext;

enum { TF_OK = 0, TF_INVALID_ARGUMENT = 3, TF_FLOAT = 1 };

static struct {
  TF_Status* (*NewStatus)(void);
  void (*DeleteStatus)(TF_Status*);
  int (*GetCode)(const TF_Status*);
  const char* (*Message)(const TF_Status*);
  void (*SetStatus)(TF_Status*, int, const char*);
  TF_OpDefinitionBuilder* (*NewOpDefinitionBuilder)(const char*);
  void (*OpDefinitionBuilderAddInput)(TF_OpDefinitionBuilder*, const char*);
  void (*OpDefinitionBuilderAddOutput)(TF_OpDefinitionBuilder*, const char*);
  void (*OpDefinitionBuilderSetIsStateful)(TF_OpDefinitionBuilder*, bool);
  void (*RegisterOpDefinition)(TF_OpDefinitionBuilder*, TF_Status*);
  TF_KernelBuilder* (*NewKernelBuilder)(const char*, const char*, void* (*)(TF_OpKernelConstruction*),
                                        void (*)(void*, TF_OpKernelContext*), void (*)(void*));
  void (*RegisterKernelBuilder)(const char*, TF_KernelBuilder*, TF_Status*);
  void (*GetInput)(TF_OpKernelContext*, int, TF_Tensor**, TF_Status*);
  void (*OpKernelContext_Failure)(TF_OpKernelContext*, TF_Status*);
  int (*TensorType)(const TF_Tensor*);
  int64_t (*TensorElementCount)(const TF_Tensor*);
  void* (*TensorData)(const TF_Tensor*);
  void (*DeleteTensor)(TF_Tensor*);
  int (*NumDims)(const TF_Tensor*);
  int64_t (*Dim)(const TF_Tensor*, int);
  TF_Tensor* (*AllocateOutput)(TF_OpKernelContext*, int, int, const int64_t*, int, size_t, TF_Status*);
} tf;

// Fills `tf` from the loaded TensorFlow; the name of the first function missing, or NULL.
static const char* resolve(void) {
#define FN(field, name) if (!(*(void**)&tf.field = dlsym(RTLD_DEFAULT, name))) return name;
  FN(NewStatus, "TF_NewStatus") FN(DeleteStatus, "TF_DeleteStatus") FN(GetCode, "TF_GetCode") FN(Message, "TF_Message")
  FN(SetStatus, "TF_SetStatus") FN(NewOpDefinitionBuilder, "TF_NewOpDefinitionBuilder")
  FN(OpDefinitionBuilderAddInput, "TF_OpDefinitionBuilderAddInput")
  FN(OpDefinitionBuilderSetIsStateful, "TF_OpDefinitionBuilderSetIsStateful")
  FN(RegisterOpDefinition, "TF_RegisterOpDefinition") FN(NewKernelBuilder, "TF_NewKernelBuilder")
  FN(RegisterKernelBuilder, "TF_RegisterKernelBuilder") FN(GetInput, "TF_GetInput")
  FN(OpKernelContext_Failure, "TF_OpKernelContext_Failure") FN(TensorType, "TF_TensorType")
  FN(TensorElementCount, "TF_TensorElementCount") FN(TensorData, "TF_TensorData") FN(DeleteTensor, "TF_DeleteTensor")
  FN(OpDefinitionBuilderAddOutput, "TF_OpDefinitionBuilderAddOutput") FN(NumDims, "TF_NumDims") FN(Dim, "TF_Dim")
  FN(AllocateOutput, "TF_AllocateOutput")
#undef FN
  return NULL;
}

#define ADAMW_INPUTS 11
static const char* const ADAMW_NAMES[ADAMW_INPUTS] = {
    "param: float", "grad: float", "exp_avg: float", "exp_avg_sq: float", "decay: float", "one_minus_beta1: float",
    "beta2: float", "one_minus_beta2: float", "bias_correction2_sqrt: float", "eps: float", "step_size: float"};
static const char* const RMS_NAMES[3] = {"x: float", "weight: float", "eps: float"};
static const char* const SILU_NAMES[1] = {"gate_up: float"};

// TF_NUM_INTRAOP_THREADS as TensorFlow reads it, else the cores online; at most 64.
static int thread_count(void) {
  const char* env = getenv("TF_NUM_INTRAOP_THREADS");
  long n = env && atoi(env) > 0 ? atoi(env) : sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

struct span {
  void (*fn)(const void* args, int64_t from, int64_t to);
  const void* args;
  int64_t from, to;
};

static void* run_span(void* arg) {
  const struct span* s = (const struct span*)arg;
  s->fn(s->args, s->from, s->to);
  return NULL;
}

// fn(args, from, to) over [0, n), split between the threads with `unit` items a thread at least; this thread runs the
// last span (so a small n starts no thread).
static void parallel_for(int64_t n, int64_t unit, void (*fn)(const void*, int64_t, int64_t), const void* args) {
  int threads = thread_count();
  if (n / threads < unit) threads = n / unit > 1 ? (int)(n / unit) : 1;
  struct span spans[64];
  pthread_t ids[64];
  int started = 0;
  for (int t = 0; t < threads; t++) spans[t] = (struct span){fn, args, n * t / threads, n * (t + 1) / threads};
  for (int t = 0; t + 1 < threads; t++) {
    if (pthread_create(&ids[started], NULL, run_span, &spans[t]) == 0) started++;
    else run_span(&spans[t]);  // no thread: this one does the span
  }
  run_span(&spans[threads - 1]);
  for (int t = 0; t < started; t++) pthread_join(ids[t], NULL);
}

// The op's inputs, each float32 with counts[k] elements; false, with the op failed, if not.
static bool get_inputs(TF_OpKernelContext* ctx, const char* op, int count, const int64_t* counts, TF_Tensor** in, TF_Status* status) {
  for (int k = 0; k < count; k++) {
    tf.GetInput(ctx, k, &in[k], status);
    if (tf.GetCode(status) != TF_OK) break;
    if (tf.TensorType(in[k]) != TF_FLOAT || tf.TensorElementCount(in[k]) != counts[k]) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s: input %d must be float32 with %lld elements", op, k, (long long)counts[k]);
      tf.SetStatus(status, TF_INVALID_ARGUMENT, msg);
      break;
    }
  }
  if (tf.GetCode(status) == TF_OK) return true;
  tf.OpKernelContext_Failure(ctx, status);
  return false;
}

// The first input's dims (at most 8); its rank, or -1.
static int first_dims(TF_OpKernelContext* ctx, int64_t* dims, TF_Status* status) {
  TF_Tensor* t = NULL;
  tf.GetInput(ctx, 0, &t, status);
  int rank = tf.GetCode(status) == TF_OK ? tf.NumDims(t) : -1;
  for (int k = 0; k < rank && k < 8; k++) dims[k] = tf.Dim(t, k);
  if (t) tf.DeleteTensor(t);
  return rank <= 8 ? rank : -1;
}

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
  const int rank = first_dims(ctx, dims, status);
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

struct rms_args {
  const float *x, *w;
  float* y;
  float eps;
  int64_t D;
};

static void rms_rows(const void* args, int64_t from, int64_t to) {
  const struct rms_args* a = (const struct rms_args*)args;
  for (int64_t r = from; r < to; r++) {
    const float* x = a->x + r * a->D;
    float* y = a->y + r * a->D;
    double sum = 0;
    for (int64_t i = 0; i < a->D; i++) sum += (double)x[i] * x[i];
    const float rs = 1.0f / sqrtf((float)(sum / (double)a->D) + a->eps);
    for (int64_t i = 0; i < a->D; i++) y[i] = (x[i] * rs) * a->w[i];
  }
}

static void rms_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in[3] = {0}, *out = NULL;
  TF_Status* status = tf.NewStatus();
  int64_t dims[8], n = 1;
  const int rank = first_dims(ctx, dims, status);
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

struct silu_args {
  const float* x;
  float* y;
  int64_t I;
};

static void silu_rows(const void* args, int64_t from, int64_t to) {
  const struct silu_args* a = (const struct silu_args*)args;
  for (int64_t r = from; r < to; r++) {
    const float *gate = a->x + 2 * r * a->I, *up = gate + a->I;
    float* y = a->y + r * a->I;
    for (int64_t i = 0; i < a->I; i++) y[i] = up[i] * (gate[i] * (1.0f / (1.0f + expf(-gate[i]))));
  }
}

static void silu_compute(void* kernel, TF_OpKernelContext* ctx) {
  (void)kernel;
  TF_Tensor *in = NULL, *out = NULL;
  TF_Status* status = tf.NewStatus();
  int64_t dims[8], n = 1;
  const int rank = first_dims(ctx, dims, status);
  for (int k = 0; k < rank; k++) n *= dims[k];
  const int64_t counts[1] = {n};
  if (rank < 1 || dims[rank - 1] % 2 != 0 || dims[rank - 1] == 0) {
    tf.SetStatus(status, TF_INVALID_ARGUMENT, "Glm46vSiluMul: the last axis of gate_up must be even (and at most 8 dims)");
    tf.OpKernelContext_Failure(ctx, status);
  } else if (get_inputs(ctx, "Glm46vSiluMul", 1, counts, &in, status)) {
    const int64_t I = dims[rank - 1] / 2;
    dims[rank - 1] = I;
    out = tf.AllocateOutput(ctx, 0, TF_FLOAT, dims, rank, (size_t)(n / 2) * sizeof(float), status);
    if (tf.GetCode(status) == TF_OK) {
      const struct silu_args a = {(const float*)tf.TensorData(in), (float*)tf.TensorData(out), I};
      parallel_for(n / (2 * I), (1 << 16) / I + 1, silu_rows, &a);
    } else {
      tf.OpKernelContext_Failure(ctx, status);
    }
  }
  if (out) tf.DeleteTensor(out);
  if (in) tf.DeleteTensor(in);
  tf.DeleteStatus(status);
}

static void* no_state(TF_OpKernelConstruction* ctx) {
  (void)ctx;
  return NULL;
}

static void no_delete(void* kernel) { (void)kernel; }

// Registers one op and its CPU kernel; false, with `error` set, where TensorFlow refuses.
static bool register_op(const char* name, const char* const* inputs, int n_in, const char* output, bool stateful,
                        void (*compute)(void*, TF_OpKernelContext*), char* error, size_t error_size) {
  TF_Status* status = tf.NewStatus();
  TF_OpDefinitionBuilder* op = tf.NewOpDefinitionBuilder(name);
  for (int k = 0; k < n_in; k++) tf.OpDefinitionBuilderAddInput(op, inputs[k]);
  if (output) tf.OpDefinitionBuilderAddOutput(op, output);
  tf.OpDefinitionBuilderSetIsStateful(op, stateful);
  tf.RegisterOpDefinition(op, status);
  if (tf.GetCode(status) == TF_OK) tf.RegisterKernelBuilder(name, tf.NewKernelBuilder(name, "CPU", no_state, compute, no_delete), status);
  const bool ok = tf.GetCode(status) == TF_OK;
  if (!ok) snprintf(error, error_size, "%s: %s", name, tf.Message(status));
  tf.DeleteStatus(status);
  return ok;
}

// registerFusedOps(): registers the ops and their CPU kernels with the loaded TensorFlow, once; returns null, or why not.
static napi_value RegisterFusedOps(napi_env env, napi_callback_info info) {
  (void)info;
  static bool done = false;
  static char error[256];
  napi_value result;
  if (!done) {
    done = true;
    const char* missing = resolve();
    if (missing) snprintf(error, sizeof error, "TensorFlow has no %s", missing);
    // AdamW writes its inputs: stateful, so never pruned, merged or cached
    else if (register_op("Glm46vAdamW", ADAMW_NAMES, ADAMW_INPUTS, NULL, true, adamw_compute, error, sizeof error) &&
             register_op("Glm46vRmsNorm", RMS_NAMES, 3, "y: float", false, rms_compute, error, sizeof error))
      register_op("Glm46vSiluMul", SILU_NAMES, 1, "y: float", false, silu_compute, error, sizeof error);
  }
  if (error[0]) napi_create_string_utf8(env, error, NAPI_AUTO_LENGTH, &result);
  else napi_get_null(env, &result);
  return result;
}

napi_value fused_ops_init(napi_env env, napi_value exports) {
  napi_property_descriptor prop = {"registerFusedOps", NULL, RegisterFusedOps, NULL, NULL, NULL, napi_default, NULL};
  napi_define_properties(env, exports, 1, &prop);
  return exports;
}

// The kernels of rows.inc and decode_attention.inc compiled for the target's baseline, and the functions of kernels.h,
// which run the AVX-512 or AVX2 + FMA build of each (kernels_avx512.c, kernels_avx2.c) where the CPU has it; also the
// choice gemv.c follows.
#define VEC16_ISA base
#include "kernels.h"
#include "vec16.h"
#include "rows.inc"
#include "decode_attention.inc"

// AVX-512 where the CPU has it, else AVX2 with FMA, else the baseline; decided once.
static enum kernel_isa best(void) {
  static enum kernel_isa found = ISA_UNKNOWN;
  if (found == ISA_UNKNOWN) {
    found = ISA_BASE;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) found = ISA_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) found = ISA_AVX2;
#endif
  }
  return found;
}

static enum kernel_isa taken = ISA_UNKNOWN;  // best(), unless a spec chose another

enum kernel_isa kernel_isa(void) { return taken == ISA_UNKNOWN ? best() : taken; }

bool kernel_isa_vectorized(void) { return best() != ISA_BASE; }

const char* kernel_isa_name(const char* wanted) {
  static const char* const names[] = {"", "base", "avx2", "avx512"};
  for (enum kernel_isa i = ISA_BASE; wanted && i <= best(); i++)
    if (!strcmp(wanted, names[i])) taken = i;
  return names[kernel_isa()];
}

#if defined(__x86_64__)
#define KERNEL(f)                                                                                         \
  void f##_avx512(const void*, int64_t, int64_t), f##_avx2(const void*, int64_t, int64_t);                   \
  void f(const void* args, int64_t from, int64_t to) {                                                       \
    const enum kernel_isa set = kernel_isa();                                                                \
    if (set == ISA_AVX512) f##_avx512(args, from, to);                                                       \
    else if (set == ISA_AVX2) f##_avx2(args, from, to);                                                      \
    else f##_base(args, from, to);                                                                           \
  }
#else
#define KERNEL(f) \
  void f(const void* args, int64_t from, int64_t to) { f##_base(args, from, to); }
#endif

KERNEL(rms_rows)
KERNEL(silu_rows)
KERNEL(softmax_rows)
KERNEL(heads_rows)
KERNEL(rms_grad_rows)
KERNEL(rms_grad_cols)
KERNEL(silu_grad_rows)
KERNEL(decode_attention_units)

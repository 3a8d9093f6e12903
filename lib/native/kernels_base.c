// The kernels of rows.inc and decode_attention.inc compiled for the target's baseline, and the functions of kernels.h,
// which run the AVX-512 or AVX2 + FMA build of each (kernels_avx512.c, kernels_avx2.c) where the CPU has it.
#define VEC16_ISA base
#include "kernels.h"
#include "vec16.h"
#include "rows.inc"
#include "decode_attention.inc"

enum isa { UNKNOWN, BASE, AVX2, AVX512 };

// AVX-512 where the CPU has it, else AVX2 with FMA, else the baseline; decided once.
static enum isa isa(void) {
  static enum isa found = UNKNOWN;
  if (found == UNKNOWN) {
    found = BASE;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) found = AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) found = AVX2;
#endif
  }
  return found;
}

#if defined(__x86_64__)
#define KERNEL(f)                                                                                         \
  void f##_avx512(const void*, int64_t, int64_t), f##_avx2(const void*, int64_t, int64_t);                   \
  void f(const void* args, int64_t from, int64_t to) {                                                       \
    const enum isa set = isa();                                                                              \
    if (set == AVX512) f##_avx512(args, from, to);                                                           \
    else if (set == AVX2) f##_avx2(args, from, to);                                                          \
    else f##_base(args, from, to);                                                                           \
  }
#else
#define KERNEL(f) \
  void f(const void* args, int64_t from, int64_t to) { f##_base(args, from, to); }
#endif

KERNEL(rms_rows)
KERNEL(silu_rows)
KERNEL(softmax_rows)
KERNEL(decode_attention_units)

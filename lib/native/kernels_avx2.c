// The kernels of rows.inc and decode_attention.inc compiled for AVX2 + FMA (kernels.h).
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#define VEC16_ISA avx2
#include "kernels.h"
#include "vec16.h"
#include "rows.inc"
#include "decode_attention.inc"
#endif

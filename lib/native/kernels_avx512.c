// The kernels of rows.inc and decode_attention.inc compiled for AVX-512 (kernels.h).
#if defined(__x86_64__)
#pragma GCC target("avx512f")
#define VEC16_ISA avx512
#include "kernels.h"
#include "vec16.h"
#include "rows.inc"
#include "decode_attention.inc"
#endif

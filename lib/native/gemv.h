// y = x Wᵀ + b for a few rows of x, the weight streamed once (lib/native/gemv.c).
#pragma once
#include <stdint.h>

struct gemv_args {
  const float* x;     // [M, K]
  const float* w;     // [N, K], Linear's layout
  const float* bias;  // [N] or NULL
  float* y;           // [M, N]
  int64_t M, N, K;
};

// Rows of 8 outputs in a block: parallel_for's item.
enum { GEMV_BLOCK = 8 };

// The outputs of blocks [from, to) (rows from * GEMV_BLOCK on) for every row of x.
void gemv_blocks(const void* args, int64_t from, int64_t to);

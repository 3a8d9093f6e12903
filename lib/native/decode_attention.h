// Attention of a decode step's few queries over a preallocated KV cache (lib/native/decode_attention.c).
#pragma once
#include <stdint.h>

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

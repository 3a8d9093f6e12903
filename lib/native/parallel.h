// parallel_for over a pool of threads kept for the process (lib/native/parallel.c).
#pragma once
#include <stdint.h>

// TF_NUM_INTRAOP_THREADS as TensorFlow reads it, else the cores online; at most 64.
int thread_count(void);

// fn(args, from, to) over [0, n), split between the threads with `unit` items a thread at least. The calling thread
// runs the first span, so a small n wakes no thread. Calls from several threads at once are safe: one runs on the
// pool, the others alone.
void parallel_for(int64_t n, int64_t unit, void (*fn)(const void* args, int64_t from, int64_t to), const void* args);

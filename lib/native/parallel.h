// parallel_for over a pool of threads kept for the process (lib/native/parallel.c).
#pragma once
#include <stdint.h>

// TF_NUM_INTRAOP_THREADS as TensorFlow reads it, else the cores online; at most 64.
int thread_count(void);

// fn(args, from, to) over [0, n), in up to 4 chunks a thread of `unit` items at least, which the calling thread and the
// workers take one by one: a small n wakes no thread, and a worker slow to wake leaves its chunks to the caller. Calls
// from several threads at once are safe: one runs on the pool, the others alone.
void parallel_for(int64_t n, int64_t unit, void (*fn)(const void* args, int64_t from, int64_t to), const void* args);

// parallel_for for the package's own ops (fused_ops.c), on threads started once and kept: starting a thread per call
// costs 20-60 us, more than a one-token product of a small weight takes. Hand-written because the ops run inside
// TensorFlow, whose C kernel API hands them no thread pool.
//
// Between jobs a worker spins for a while (about 100 us, a decode step's gap between two products), then sleeps on a
// futex until the next job's generation.
#define _GNU_SOURCE
#include "parallel.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { MAX_THREADS = 64, SPINS = 2000 };

int thread_count(void) {
  const char* env = getenv("TF_NUM_INTRAOP_THREADS");
  long n = env && atoi(env) > 0 ? atoi(env) : sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// One job at a time: its fields are written before `gen` is bumped, and read by the workers after they see it.
static struct {
  _Atomic uint32_t gen;  // the job's number; workers wait for it to change
  _Atomic int left;      // workers yet to finish the job
  _Atomic int sleepers;  // workers waiting on the futex
  int workers;           // threads started
  int parts;             // spans of this job: 0 runs on the caller, 1..workers on the workers (empty past parts)
  int64_t n;
  void (*fn)(const void*, int64_t, int64_t);
  const void* args;
} pool;

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;

static void run_part(int part) {
  if (part < pool.parts) pool.fn(pool.args, pool.n * part / pool.parts, pool.n * (part + 1) / pool.parts);
}

static void* worker(void* arg) {
  const int part = (int)(intptr_t)arg;
  uint32_t seen = 0;
  for (;;) {
    uint32_t now;
    for (int spins = 0; (now = atomic_load(&pool.gen)) == seen;) {
      if (++spins < SPINS) {
        cpu_relax();
        continue;
      }
      atomic_fetch_add(&pool.sleepers, 1);
      syscall(SYS_futex, &pool.gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);  // returns at once if gen moved
      atomic_fetch_sub(&pool.sleepers, 1);
      spins = 0;
    }
    seen = now;
    run_part(part);
    atomic_fetch_sub(&pool.left, 1);
  }
  return NULL;
}

// Starts thread_count() - 1 workers, once.
static void start_workers(void) {
  const int wanted = thread_count() - 1;
  for (int t = 1; t <= wanted; t++) {
    pthread_t id;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int ok = pthread_create(&id, &attr, worker, (void*)(intptr_t)t) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) break;
    pool.workers = t;
  }
}

void parallel_for(int64_t n, int64_t unit, void (*fn)(const void*, int64_t, int64_t), const void* args) {
  int threads = thread_count();
  if (n / threads < unit) threads = n / unit > 1 ? (int)(n / unit) : 1;
  if (threads > 1 && pthread_mutex_trylock(&busy) == 0) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, start_workers);
    const int workers = pool.workers;
    if (threads > workers + 1) threads = workers + 1;
    pool.parts = threads, pool.n = n, pool.fn = fn, pool.args = args;
    atomic_store(&pool.left, workers);
    atomic_fetch_add(&pool.gen, 1);
    if (atomic_load(&pool.sleepers) > 0) syscall(SYS_futex, &pool.gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    run_part(0);
    while (atomic_load(&pool.left) > 0) cpu_relax();
    pthread_mutex_unlock(&busy);
    return;
  }
  fn(args, 0, n);  // one span, or another thread has the pool
}

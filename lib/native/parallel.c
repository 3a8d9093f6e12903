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

// One job at a time, in chunks that the caller and the workers claim one by one: a worker that wakes late (the other
// core still busy with TensorFlow's spinning threads after a product) leaves its share to the caller instead of
// holding it up. `claim` holds the job's number (bits 32-63), its chunk count (16-31) and its next chunk (0-15); a
// chunk is claimed by a compare-and-swap of that word, so a claim made in job j reads j's fields (written before the
// word was), and a worker late from an earlier job finds nothing to claim.
static struct {
  _Atomic uint32_t gen;    // the job's number; workers wait for it to change
  _Atomic uint64_t claim;  // job << 32 | chunks << 16 | next chunk
  _Atomic int64_t done;    // chunks finished
  _Atomic int sleepers;    // workers waiting on the futex
  int workers;             // threads started
  int64_t n;
  void (*fn)(const void*, int64_t, int64_t);
  const void* args;
} pool;

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;

// Runs chunks of job `job` until none is left.
static void run_chunks(uint32_t job) {
  uint64_t c = atomic_load(&pool.claim);
  while ((uint32_t)(c >> 32) == job && (c & 0xffff) < ((c >> 16) & 0xffff)) {
    if (!atomic_compare_exchange_weak(&pool.claim, &c, c + 1)) continue;  // c now holds the word as it is
    const int64_t k = (int64_t)(c & 0xffff), chunks = (int64_t)((c >> 16) & 0xffff), n = pool.n;
    pool.fn(pool.args, n * k / chunks, n * (k + 1) / chunks);
    atomic_fetch_add(&pool.done, 1);
    c = atomic_load(&pool.claim);
  }
}

static void* worker(void* arg) {
  (void)arg;
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
    run_chunks(now);
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
    const int ok = pthread_create(&id, &attr, worker, NULL) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) break;
    pool.workers = t;
  }
}

void parallel_for(int64_t n, int64_t unit, void (*fn)(const void*, int64_t, int64_t), const void* args) {
  const int threads = thread_count();
  // up to 4 chunks a thread, each of `unit` items at least
  int64_t chunks = n / (unit > 0 ? unit : 1);
  if (chunks > 4 * threads) chunks = 4 * threads;
  if (threads > 1 && chunks > 1 && pthread_mutex_trylock(&busy) == 0) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, start_workers);
    if (pool.workers > 0) {
      const uint32_t job = atomic_load(&pool.gen) + 1;
      pool.n = n, pool.fn = fn, pool.args = args;
      atomic_store(&pool.done, 0);
      atomic_store(&pool.claim, (uint64_t)job << 32 | (uint64_t)chunks << 16);
      atomic_store(&pool.gen, job);
      if (atomic_load(&pool.sleepers) > 0) syscall(SYS_futex, &pool.gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
      run_chunks(job);
      while (atomic_load(&pool.done) < chunks) cpu_relax();  // the chunks the workers took
      pthread_mutex_unlock(&busy);
      return;
    }
    pthread_mutex_unlock(&busy);
  }
  fn(args, 0, n);  // one span, or another thread has the pool
}

// A tiny N-API addon that runs dlopen() and the first TensorFlow calls with file descriptor 2 pointed at /dev/null.
// Hand-written because TensorFlow 2.21 logs through absl before absl::InitializeLog() runs: those lines (oneDNN,
// cpu_feature_guard, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL, and Node has no way to redirect a file descriptor.
// It also asks for transparent huge pages on the memory of large weights (hugePageMark / hugePageAdvise), which Node
// cannot either: madvise() has no JavaScript binding.
#include <dlfcn.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int saved_fd = -1;

// mute(): fd 2 -> /dev/null until unmute(); nested calls are no-ops.
static napi_value Mute(napi_env env, napi_callback_info info) {
  if (saved_fd < 0) {
    fflush(stderr);
    int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd >= 0) {
      saved_fd = dup(2);
      if (saved_fd >= 0) dup2(null_fd, 2);
      close(null_fd);
    }
  }
  return NULL;
}

static napi_value Unmute(napi_env env, napi_callback_info info) {
  if (saved_fd >= 0) {
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    saved_fd = -1;
  }
  return NULL;
}

// dlopen(path): loads a library RTLD_NOW | RTLD_GLOBAL; returns null, or dlerror()'s text.
static napi_value Dlopen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[4096];
  size_t len = 0;
  napi_value result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "dlopen(path: string)");
    return NULL;
  }
  const char* err = dlopen(path, RTLD_NOW | RTLD_GLOBAL) ? NULL : dlerror();
  if (err) napi_create_string_utf8(env, err, NAPI_AUTO_LENGTH, &result);
  else napi_get_null(env, &result);
  return result;
}

// Huge pages for a buffer whose address JavaScript never sees (TensorFlow allocates it): hugePageMark() records the
// anonymous private read-write mappings (/proc/self/maps), and hugePageAdvise(minBytes), after the allocation,
// applies madvise(MADV_HUGEPAGE) to the 2 MiB-aligned part of every such mapping of at least minBytes that was not
// there at the mark (glibc serves a large allocation with its own mmap, not yet touched). Returns the bytes advised.
#define MAX_RANGES 8192
#define HUGE_PAGE (2ul << 20)
static unsigned long marked[MAX_RANGES][2];
static int n_marked = -1;  // -1: no mark (then nothing is advised)

// Calls fn(lo, hi, ctx) for each anonymous private read-write mapping without a name ([heap], [stack] have one).
static void each_anon_mapping(void (*fn)(unsigned long, unsigned long, void*), void* ctx) {
  FILE* f = fopen("/proc/self/maps", "r");
  if (!f) return;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi, off, inode;
    char perms[8], dev[16];
    int n = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &lo, &hi, perms, &off, dev, &inode, &n) < 6) continue;
    const char* name = line + n;
    while (*name == ' ') name++;
    if (strcmp(perms, "rw-p") == 0 && inode == 0 && (*name == '\n' || *name == '\0')) fn(lo, hi, ctx);
  }
  fclose(f);
}

static void record(unsigned long lo, unsigned long hi, void* ctx) {
  (void)ctx;
  if (n_marked < MAX_RANGES) {
    marked[n_marked][0] = lo;
    marked[n_marked][1] = hi;
    n_marked++;
  }
}

static napi_value HugePageMark(napi_env env, napi_callback_info info) {
  n_marked = 0;
  each_anon_mapping(record, NULL);
  return NULL;
}

struct advice { unsigned long min_bytes; double advised; };

// madvise on [lo, hi) rounded inward to whole huge pages
static void advise_range(unsigned long lo, unsigned long hi, struct advice* a) {
  unsigned long from = (lo + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), to = hi & ~(HUGE_PAGE - 1);
  if (to > from && madvise((void*)from, to - from, MADV_HUGEPAGE) == 0) a->advised += (double)(to - from);
}

// the parts of [lo, hi) outside every marked range (sorted by address, as /proc/self/maps lists them)
static void advise_new(unsigned long lo, unsigned long hi, void* ctx) {
  struct advice* a = (struct advice*)ctx;
  if (hi - lo < a->min_bytes) return;
  unsigned long at = lo;
  for (int i = 0; i < n_marked && at < hi; i++) {
    if (marked[i][1] <= at || marked[i][0] >= hi) continue;
    if (marked[i][0] > at && marked[i][0] - at >= a->min_bytes) advise_range(at, marked[i][0], a);
    at = marked[i][1];
  }
  if (at < hi && hi - at >= a->min_bytes) advise_range(at, hi, a);
}

static napi_value HugePageAdvise(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double min_bytes = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_double(env, argv[0], &min_bytes) != napi_ok || min_bytes < 0) {
    napi_throw_type_error(env, NULL, "hugePageAdvise(minBytes: number)");
    return NULL;
  }
  struct advice a = {(unsigned long)min_bytes, 0};
  if (n_marked >= 0) each_anon_mapping(advise_new, &a);
  n_marked = -1;
  napi_create_double(env, a.advised, &result);
  return result;
}

napi_value fused_ops_init(napi_env env, napi_value exports);  // fused_ops.c

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"mute", NULL, Mute, NULL, NULL, NULL, napi_default, NULL},
    {"unmute", NULL, Unmute, NULL, NULL, NULL, napi_default, NULL},
    {"dlopen", NULL, Dlopen, NULL, NULL, NULL, napi_default, NULL},
    {"hugePageMark", NULL, HugePageMark, NULL, NULL, NULL, napi_default, NULL},
    {"hugePageAdvise", NULL, HugePageAdvise, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return fused_ops_init(env, exports);
}

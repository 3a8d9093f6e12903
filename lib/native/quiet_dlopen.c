// A tiny N-API addon that runs dlopen() and the first TensorFlow calls with file descriptor 2 pointed at /dev/null.
// Hand-written because TensorFlow 2.21 logs through absl before absl::InitializeLog() runs: those lines (oneDNN,
// cpu_feature_guard, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL, and Node has no way to redirect a file descriptor.
#include <dlfcn.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
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

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"mute", NULL, Mute, NULL, NULL, NULL, napi_default, NULL},
    {"unmute", NULL, Unmute, NULL, NULL, NULL, napi_default, NULL},
    {"dlopen", NULL, Dlopen, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

// TensorFlow's C API as the package's ops use it (tf_kernel_api.h): the functions looked up, and the helpers the ops'
// kernels share.
#include "tf_kernel_api.h"

#include <dlfcn.h>
#include <stdio.h>

struct tf_api tf;

const char* tf_resolve(void) {
#define FN(field, name) if (!(*(void**)&tf.field = dlsym(RTLD_DEFAULT, name))) return name;
  FN(NewStatus, "TF_NewStatus") FN(DeleteStatus, "TF_DeleteStatus") FN(GetCode, "TF_GetCode") FN(NumInputs, "TF_NumInputs") FN(Message, "TF_Message")
  FN(SetStatus, "TF_SetStatus") FN(NewOpDefinitionBuilder, "TF_NewOpDefinitionBuilder")
  FN(OpDefinitionBuilderAddInput, "TF_OpDefinitionBuilderAddInput")
  FN(OpDefinitionBuilderSetIsStateful, "TF_OpDefinitionBuilderSetIsStateful")
  FN(RegisterOpDefinition, "TF_RegisterOpDefinition") FN(NewKernelBuilder, "TF_NewKernelBuilder")
  FN(RegisterKernelBuilder, "TF_RegisterKernelBuilder") FN(GetInput, "TF_GetInput")
  FN(OpKernelContext_Failure, "TF_OpKernelContext_Failure") FN(TensorType, "TF_TensorType")
  FN(TensorElementCount, "TF_TensorElementCount") FN(TensorData, "TF_TensorData") FN(DeleteTensor, "TF_DeleteTensor")
  FN(OpDefinitionBuilderAddOutput, "TF_OpDefinitionBuilderAddOutput") FN(NumDims, "TF_NumDims") FN(Dim, "TF_Dim")
  FN(AllocateOutput, "TF_AllocateOutput")
#undef FN
  return NULL;
}

bool get_inputs(TF_OpKernelContext* ctx, const char* op, int count, const int64_t* counts, TF_Tensor** in, TF_Status* status) {
  for (int k = 0; k < count; k++) {
    tf.GetInput(ctx, k, &in[k], status);
    if (tf.GetCode(status) != TF_OK) break;
    if (tf.TensorType(in[k]) != TF_FLOAT || tf.TensorElementCount(in[k]) != counts[k]) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s: input %d must be float32 with %lld elements", op, k, (long long)counts[k]);
      tf.SetStatus(status, TF_INVALID_ARGUMENT, msg);
      break;
    }
  }
  if (tf.GetCode(status) == TF_OK) return true;
  tf.OpKernelContext_Failure(ctx, status);
  return false;
}

int input_dims(TF_OpKernelContext* ctx, int index, int64_t* dims, TF_Status* status) {
  TF_Tensor* t = NULL;
  tf.GetInput(ctx, index, &t, status);
  int rank = tf.GetCode(status) == TF_OK ? tf.NumDims(t) : -1;
  for (int k = 0; k < rank && k < 8; k++) dims[k] = tf.Dim(t, k);
  if (t) tf.DeleteTensor(t);
  return rank <= 8 ? rank : -1;
}

static void* no_state(TF_OpKernelConstruction* ctx) {
  (void)ctx;
  return NULL;
}

static void no_delete(void* kernel) { (void)kernel; }

bool register_op(const char* name, const char* const* inputs, int n_in, const char* const* outputs, int n_out, bool stateful,
                 void (*compute)(void*, TF_OpKernelContext*), char* error, size_t error_size) {
  TF_Status* status = tf.NewStatus();
  TF_OpDefinitionBuilder* op = tf.NewOpDefinitionBuilder(name);
  for (int k = 0; k < n_in; k++) tf.OpDefinitionBuilderAddInput(op, inputs[k]);
  for (int k = 0; k < n_out; k++) tf.OpDefinitionBuilderAddOutput(op, outputs[k]);
  tf.OpDefinitionBuilderSetIsStateful(op, stateful);
  tf.RegisterOpDefinition(op, status);
  if (tf.GetCode(status) == TF_OK) tf.RegisterKernelBuilder(name, tf.NewKernelBuilder(name, "CPU", no_state, compute, no_delete), status);
  const bool ok = tf.GetCode(status) == TF_OK;
  if (!ok) snprintf(error, error_size, "%s: %s", name, tf.Message(status));
  tf.DeleteStatus(status);
  return ok;
}

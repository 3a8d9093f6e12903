// The part of TensorFlow's C API (tensorflow/c/c_api.h, kernels.h, ops.h) that the package's own ops use, looked up
// with dlsym in the TensorFlow that tfjs-node has loaded: the addon links nothing of TensorFlow. Hand-written because
// TensorFlow's headers are not in the PyPI wheel the native backend is built from (docs/native.md), and these few
// declarations are all the ops need. Plus the helpers every op's kernel shares: reading its inputs and registering it.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct TF_Status TF_Status;
typedef struct TF_Tensor TF_Tensor;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_KernelBuilder TF_KernelBuilder;
typedef struct TF_OpKernelConstruction TF_OpKernelConstruction;
typedef struct TF_OpKernelContext TF_OpKernelContext;

enum { TF_OK = 0, TF_INVALID_ARGUMENT = 3, TF_FLOAT = 1, TF_INT32 = 3 };

struct tf_api {
  TF_Status* (*NewStatus)(void);
  void (*DeleteStatus)(TF_Status*);
  int (*GetCode)(const TF_Status*);
  int (*NumInputs)(TF_OpKernelContext*);
  const char* (*Message)(const TF_Status*);
  void (*SetStatus)(TF_Status*, int, const char*);
  TF_OpDefinitionBuilder* (*NewOpDefinitionBuilder)(const char*);
  void (*OpDefinitionBuilderAddInput)(TF_OpDefinitionBuilder*, const char*);
  void (*OpDefinitionBuilderAddOutput)(TF_OpDefinitionBuilder*, const char*);
  void (*OpDefinitionBuilderSetIsStateful)(TF_OpDefinitionBuilder*, bool);
  void (*RegisterOpDefinition)(TF_OpDefinitionBuilder*, TF_Status*);
  TF_KernelBuilder* (*NewKernelBuilder)(const char*, const char*, void* (*)(TF_OpKernelConstruction*),
                                        void (*)(void*, TF_OpKernelContext*), void (*)(void*));
  void (*RegisterKernelBuilder)(const char*, TF_KernelBuilder*, TF_Status*);
  void (*GetInput)(TF_OpKernelContext*, int, TF_Tensor**, TF_Status*);
  void (*OpKernelContext_Failure)(TF_OpKernelContext*, TF_Status*);
  int (*TensorType)(const TF_Tensor*);
  int64_t (*TensorElementCount)(const TF_Tensor*);
  void* (*TensorData)(const TF_Tensor*);
  void (*DeleteTensor)(TF_Tensor*);
  int (*NumDims)(const TF_Tensor*);
  int64_t (*Dim)(const TF_Tensor*, int);
  TF_Tensor* (*AllocateOutput)(TF_OpKernelContext*, int, int, const int64_t*, int, size_t, TF_Status*);
};
extern struct tf_api tf;

// Fills `tf` from the loaded TensorFlow; the name of the first function missing, or NULL.
const char* tf_resolve(void);

// The op's inputs, each float32 with counts[k] elements; false, with the op failed, if not.
bool get_inputs(TF_OpKernelContext* ctx, const char* op, int count, const int64_t* counts, TF_Tensor** in, TF_Status* status);

// Input `index`'s dims (at most 8); its rank, or -1.
int input_dims(TF_OpKernelContext* ctx, int index, int64_t* dims, TF_Status* status);

// Registers one op and its CPU kernel (no state of its own); false, with `error` set, where TensorFlow refuses.
bool register_op(const char* name, const char* const* inputs, int n_in, const char* const* outputs, int n_out, bool stateful,
                 void (*compute)(void*, TF_OpKernelContext*), char* error, size_t error_size);

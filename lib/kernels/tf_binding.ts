// The part of tfjs-node's backend that the native kernels here call directly (tfjs-node 4.22 ships no types for it):
// its binding runs TensorFlow ops on tensor ids, and the backend maps tfjs tensors to and from those ids. Also the
// one helper they all need: a reshaped view, which TensorFlow's Reshape makes without copying.
import * as tf from '@tensorflow/tfjs';

/** What executeOp returns for each output. */
export interface TfTensorMeta {
  id: number;
  shape: number[];
  dtype: number;
}

export interface TfAttr {
  name: string;
  type: number;
  value: unknown;
}

export interface TfBinding {
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
  TF_INT32: number;
  TF_FLOAT: number;
  createTensor(shape: number[], dtype: number, values: Int32Array | Float32Array): number;
  executeOp(name: string, attrs: TfAttr[], inputIds: number[], numOutputs: number): TfTensorMeta[];
  deleteTensor(id: number): void;
}

export interface NodeBackend {
  binding: TfBinding;
  getDTypeInteger(dtype: string): number;
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(metadata: TfTensorMeta): tf.Tensor;
  executeSingleOutput(name: string, attrs: TfAttr[], inputs: tf.TensorInfo[]): tf.Tensor;
}

/** The active backend as tfjs-node's (call only when tf.getBackend() is 'tensorflow'). */
export const nodeBackend = (): NodeBackend => tf.backend() as unknown as NodeBackend;

export const typeAttr = (b: TfBinding, name: string, value: number): TfAttr => ({ name, type: b.TF_ATTR_TYPE, value });
export const boolAttr = (b: TfBinding, name: string, value: boolean): TfAttr => ({ name, type: b.TF_ATTR_BOOL, value });

/** int32 (and float32) vectors by value, as TensorFlow tensor ids owned here for the life of the process (a few hundred bytes). */
const vectors = new Map<string, number>();
/** a bound on what a long-running process keeps (shapes vary with the sequence length); past it, made per call */
const MAX_VECTORS = 4096;

/** Runs `use` with the id of a TensorFlow int32 (or float32) vector holding `values` (cached, or made and freed around the call). */
export function withVector<T>(be: Pick<NodeBackend, 'binding'>, values: number[], use: (id: number) => T, dtype: 'int32' | 'float32' = 'int32'): T {
  const key = `${dtype}:${values.join(',')}`;
  const cached = vectors.get(key);
  if (cached !== undefined) return use(cached);
  if (vectors.size >= MAX_VECTORS) return withTransientVector(be, values, use, dtype);
  const id = makeVector(be, values, dtype);
  vectors.set(key, id);
  return use(id);
}

/** Runs `use` with the id of a TensorFlow vector holding `values`, made and freed around the call (values that change every call). */
export function withTransientVector<T>(be: Pick<NodeBackend, 'binding'>, values: number[], use: (id: number) => T, dtype: 'int32' | 'float32' = 'int32'): T {
  const id = makeVector(be, values, dtype);
  try {
    return use(id);
  } finally {
    be.binding.deleteTensor(id);
  }
}

function makeVector(be: Pick<NodeBackend, 'binding'>, values: number[], dtype: 'int32' | 'float32'): number {
  const b = be.binding;
  return dtype === 'int32' ? b.createTensor([values.length], b.TF_INT32, Int32Array.from(values)) : b.createTensor([values.length], b.TF_FLOAT, Float32Array.from(values));
}

/** A float32 view of tensor `id` with `shape` (TensorFlow's Reshape shares the buffer); the caller frees both ids. */
export function reshapeView(be: Pick<NodeBackend, 'binding'>, id: number, shape: number[]): TfTensorMeta {
  const b = be.binding;
  return withVector(be, shape, (s) => b.executeOp('Reshape', [typeAttr(b, 'T', b.TF_FLOAT), typeAttr(b, 'Tshape', b.TF_INT32)], [id, s], 1)[0]!);
}

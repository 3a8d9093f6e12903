// bfloat16 checkpoint bytes -> a float32 tensor on the native backend, converted by TensorFlow (Bitcast + Cast, exact:
// bf16 -> f32 only appends 16 zero bits) instead of in JavaScript: the host then holds the raw bytes only, not a
// float32 copy per tensor, and the cast runs on TensorFlow's threads. A load of the benchmark model spent ~75% of
// its time in the JavaScript loop (docs/benchmark.md).
import * as tf from '@tensorflow/tfjs';
import { withVector } from './tf_shape';

const TF_BFLOAT16 = 14; // TF_DataType

interface Meta {
  id: number;
}

interface NodeBackend {
  binding: {
    TF_ATTR_TYPE: number;
    TF_ATTR_BOOL: number;
    TF_INT32: number;
    TF_FLOAT: number;
    createTensor(shape: number[], dtype: number, values: Int32Array): number;
    executeOp(name: string, attrs: unknown[], inputIds: number[], numOutputs: number): Meta[];
    deleteTensor(id: number): void;
  };
  createOutputTensor(metadata: Meta): tf.Tensor;
}

/**
 * bf16 `bytes` (little-endian, as safetensors stores them) of a tensor of `shape` -> a float32 tf.Tensor, or
 * undefined where this path does not apply (another backend, odd length, unaligned bytes): the caller converts on
 * the host then. The bytes are copied before returning, so the caller may reuse them.
 */
export function tfBf16Tensor(bytes: Uint8Array, shape: number[]): tf.Tensor | undefined {
  const n = bytes.byteLength / 2;
  if (tf.getBackend() !== 'tensorflow' || n % 2 !== 0 || n === 0 || bytes.byteOffset % 4 !== 0) return undefined;
  const be = tf.backend() as unknown as NodeBackend;
  const b = be.binding;
  const type = (name: string, value: number) => ({ name, type: b.TF_ATTR_TYPE, value });
  const ids: number[] = [];
  try {
    ids.push(b.createTensor([n / 2], b.TF_INT32, new Int32Array(bytes.buffer, bytes.byteOffset, n / 2)));
    ids.push(b.executeOp('Bitcast', [type('T', b.TF_INT32), type('type', TF_BFLOAT16)], [ids[0]!], 1)[0]!.id); // [n/2, 2]
    const cast = [type('SrcT', TF_BFLOAT16), type('DstT', b.TF_FLOAT), { name: 'Truncate', type: b.TF_ATTR_BOOL, value: false }];
    ids.push(b.executeOp('Cast', cast, [ids[1]!], 1)[0]!.id);
    for (const id of ids.splice(0, 2)) b.deleteTensor(id); // the bytes' copy, before the reshape
    const reshape = [type('T', b.TF_FLOAT), type('Tshape', b.TF_INT32)];
    const out = withVector(be, shape, (s) => b.executeOp('Reshape', reshape, [ids[0]!, s], 1)[0]!);
    return be.createOutputTensor(out);
  } finally {
    for (const id of ids) b.deleteTensor(id);
  }
}

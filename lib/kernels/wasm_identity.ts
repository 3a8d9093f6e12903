// Identity for tfjs-backend-wasm 4.22 sharing its input's data, as the cpu backend's does, instead of copying it.
// The engine clones every tensor it saves for the backward pass (and every tf.clone, keep-through-tidy copy) through
// Identity, so the stock kernel copied each saved activation and every weight a product reads, once per training
// step: ~1.6 s of a 41 s benchmark step, and the copies' memory. Tensors are immutable, so sharing is what wasm's
// own Reshape already does (incRef on the data id; the data is freed when its last tensor is disposed).
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

let stock: tf.KernelConfig | undefined;

function identity(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype === 'string') return stock!.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}

export const wasmIdentityKernel = identity as unknown as tf.KernelFunc;

/** Replaces wasm's Identity (call once, after the wasm backend has initialised). */
export function installWasmIdentity(): void {
  const k = tf.getKernel('Identity', 'wasm');
  if (!k) throw new Error('installWasmIdentity: the wasm backend has no Identity kernel to replace');
  if (k.kernelFunc === wasmIdentityKernel) return;
  stock = k;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ ...k, kernelFunc: wasmIdentityKernel });
}

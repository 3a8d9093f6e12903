// An experiment for the benchmark only (opt-in with --zero-copy-identity): the wasm Identity kernel sharing its
// input's data as the cpu backend's does, instead of copying it. The engine clones every tensor it saves for the
// backward pass through Identity, so on stock wasm a training step copies each saved activation and every weight
// it multiplies by. This is a proposal for lib/kernels (not installed by the package); bench.ts labels its figures.
import * as tf from '@tensorflow/tfjs';

export function installZeroCopyIdentity(): void {
  const stock = tf.getKernel('Identity', 'wasm');
  if (!stock) throw new Error('no wasm Identity kernel to replace');
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    ...stock,
    kernelFunc: (args) => {
      const { inputs, backend } = args as unknown as { inputs: { x: tf.TensorInfo }; backend: { incRef(id: object): void } };
      const { x } = inputs;
      if (x.dtype === 'string') return stock.kernelFunc(args);
      backend.incRef(x.dataId); // tensors are immutable: sharing is what Reshape already does
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}

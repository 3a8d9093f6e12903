// The native backend's matMul for 2-D operands: TensorFlow's MatMul op, where tfjs-node runs BatchMatMulV2 for every
// rank. Every Linear folds its input to 2-D, so this is the model's main product. On TF 2.21's oneDNN, 2 threads,
// [512,1024]x[1024,2816] takes 9.9 ms as MatMul and 11.7 ms as BatchMatMulV2 (13.0 ms with the weight transposed,
// Linear's form: 10.3 ms as MatMul), see docs/benchmark.md. Batched products keep tfjs-node's kernel.
import * as tf from '@tensorflow/tfjs';
import { NodeBackend, boolAttr, typeAttr } from './tf_binding';
import { installTfShapeKernels } from './tf_shape';

export function installTfMatMul(): void {
  installTfShapeKernels(); // installed with the matmul, the one hook the native backend's overrides have
  const stock = tf.getKernel('BatchMatMul', 'tensorflow');
  if (!stock) return;
  tf.unregisterKernel('BatchMatMul', 'tensorflow');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'tensorflow',
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      if (a.shape.length !== 2 || b.shape.length !== 2 || a.dtype !== 'float32') return stock.kernelFunc(args);
      const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
      const be = args.backend as unknown as NodeBackend;
      const bd = be.binding;
      return be.executeSingleOutput('MatMul', [typeAttr(bd, 'T', bd.TF_FLOAT), boolAttr(bd, 'transpose_a', transposeA), boolAttr(bd, 'transpose_b', transposeB)], [a, b]);
    },
  });
}

// The native backend's Reshape, Transpose and Mean with their small int32 operands (shape, perm, axes) kept as
// TensorFlow tensors made once per distinct value, and Mean without tfjs-node's float32 -> float32 Cast. tfjs-node's
// own kernels make a tfjs tensor1d for the operand on every call (and Mean a Cast copy of its input): a one-token
// decode step runs about 300 of these on tiny tensors, so their per-call cost, not their arithmetic, is what they
// take. The TensorFlow ops run are the same (Reshape, Transpose, Mean), so every value is the same.
import * as tf from '@tensorflow/tfjs';
import { NodeBackend, TfAttr, boolAttr, withVector } from './tf_binding';

function run(be: NodeBackend, name: string, attrs: TfAttr[], x: tf.TensorInfo, values: number[]): tf.TensorInfo {
  const [xId] = be.getInputTensorIds([x]);
  const out = withVector(be, values, (v) => be.binding.executeOp(name, attrs, [xId!, v], 1));
  return be.createOutputTensor(out[0]!);
}

const type = (be: NodeBackend, name: string, dtype: string): TfAttr => ({ name, type: be.binding.TF_ATTR_TYPE, value: be.getDTypeInteger(dtype) });

export function installTfShapeKernels(): void {
  const stock = {
    reshape: tf.getKernel('Reshape', 'tensorflow'),
    transpose: tf.getKernel('Transpose', 'tensorflow'),
    mean: tf.getKernel('Mean', 'tensorflow'),
  };
  if (!stock.reshape || !stock.transpose || !stock.mean) return;
  const replace = (kernelName: string, kernelFunc: tf.KernelFunc) => {
    tf.unregisterKernel(kernelName, 'tensorflow');
    tf.registerKernel({ kernelName, backendName: 'tensorflow', kernelFunc });
  };
  const plain = (dtype: string) => dtype === 'float32' || dtype === 'int32' || dtype === 'bool';
  // Reshape and Transpose: one int32 operand each (the shape, the permutation), which tfjs-node makes per call
  for (const [kernel, operand, attr, stockKernel] of [['Reshape', 'Tshape', 'shape', stock.reshape], ['Transpose', 'Tperm', 'perm', stock.transpose]] as const) {
    replace(kernel, (args) => {
      const { x } = args.inputs as { x: tf.TensorInfo };
      if (!plain(x.dtype)) return stockKernel.kernelFunc(args);
      const be = args.backend as unknown as NodeBackend;
      return run(be, kernel, [type(be, 'T', x.dtype), type(be, operand, 'int32')], x, (args.attrs as Record<string, number[]>)[attr]!);
    });
  }
  replace('Mean', (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    // tfjs-node casts every input to float32 first; for a float32 input that Cast is a copy
    if (x.dtype !== 'float32') return stock.mean!.kernelFunc(args);
    const be = args.backend as unknown as NodeBackend;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const attrs = [boolAttr(be.binding, 'keep_dims', keepDims), type(be, 'T', 'float32'), type(be, 'Tidx', 'int32')];
    return run(be, 'Mean', attrs, x, axes);
  });
}

// Zero gradients for tfjs comparison and logical kernels, which register none (tfjs_notes.md §0.2, §2.4), so that
// tf.where(tf.greater(x, 0), …) can sit inside a differentiated function. The true derivative is zero almost
// everywhere; the engine wants float32 gradients shaped like each input.
import * as tf from '@tensorflow/tfjs';

const BINARY = ['Equal', 'NotEqual', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'LogicalAnd', 'LogicalOr', 'LogicalXor'];
const UNARY = ['LogicalNot', 'IsNan', 'IsInf', 'IsFinite'];

/** Kernel names that got a zero gradient from this module (those tfjs left without one). */
export const zeroGradKernels: string[] = [];

/** Registers the zero gradients once, for every backend; kernels that already have a gradient are left alone. */
export function installZeroGradients(): void {
  for (const kernelName of BINARY) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: ['a', 'b'],
      gradFunc: (_dy, saved) => {
        const [a, b] = saved as [tf.Tensor, tf.Tensor];
        return { a: () => tf.zeros(a.shape), b: () => tf.zeros(b.shape) };
      },
    });
    zeroGradKernels.push(kernelName);
  }
  for (const kernelName of UNARY) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: ['x'],
      gradFunc: (_dy, saved) => {
        const [x] = saved as [tf.Tensor];
        return { x: () => tf.zeros(x.shape) };
      },
    });
    zeroGradKernels.push(kernelName);
  }
}

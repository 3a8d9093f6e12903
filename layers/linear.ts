// torch.nn.Linear with the weight kept in checkpoint layout [out, in]: y = x @ W^T + b.
import * as tf from '@tensorflow/tfjs';
import { markRowSplittable, rowChunks } from '../lib/device_limits';
import { linearFused } from '../lib/kernels/tf_fused';
import { Module, Parameter } from '../lib/module';

export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | undefined;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias: boolean }) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures]);
    this.bias = opts.bias ? this.param('bias', [outFeatures], 'zeros') : undefined;
    markRowSplittable(this.weight);
  }

  /** [..., in] -> [..., out]. Folded to 2-D: tfjs's batched matMul gradient does not reduce broadcast dims. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, this.inFeatures])) as tf.Tensor2D; // a reshape is a kernel call on native TF
      const fused = linearFused(x2, this.weight.value, this.bias?.value); // a decode step's product on the native CPU backend
      if (fused) return x.rank === 2 ? fused : tf.reshape(fused, [...lead, this.outFeatures]);
      // a weight larger than one WebGPU binding (lm_head at vocab 151552): one matMul per row chunk, outputs side by side
      const split = rowChunks(this.weight.value, `Linear(${this.inFeatures} -> ${this.outFeatures}) weight`);
      let y = split ? tf.concat(split.chunks.map((w) => tf.matMul(x2, w, false, true)), -1) : tf.matMul(x2, this.weight.value, false, true);
      if (this.bias) y = tf.add(y, this.bias.value);
      return x.rank === 2 ? y : tf.reshape(y, [...lead, this.outFeatures]);
    });
  }
}

// torch.nn.Linear with the weight kept in checkpoint layout [out, in]: y = x @ W^T + b.
import * as tf from '@tensorflow/tfjs';
import { Module, Parameter } from '../lib/module';

export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | undefined;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias: boolean }) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures]);
    this.bias = opts.bias ? this.param('bias', [outFeatures], 'zeros') : undefined;
  }

  /** [..., in] -> [..., out]. Folded to 2-D: tfjs's batched matMul gradient does not reduce broadcast dims. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, this.inFeatures]);
      let y = tf.matMul(x2, this.weight.value, false, true);
      if (this.bias) y = tf.add(y, this.bias.value);
      return tf.reshape(y, [...lead, this.outFeatures]);
    });
  }
}

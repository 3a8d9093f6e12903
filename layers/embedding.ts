// torch.nn.Embedding: rows of `weight` [V, D] gathered by int32 ids.
import * as tf from '@tensorflow/tfjs';
import { Module, Parameter } from '../lib/module';

export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(readonly numEmbeddings: number, readonly dim: number) {
    super();
    this.weight = this.param('weight', [numEmbeddings, dim]);
  }

  /** ids [...] int32 -> [..., D]. Gathers on a flat index (gather with batchDims is wrong on wasm). */
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.reshape(tf.gather(this.weight.value, tf.reshape(ids, [-1])), [...ids.shape, this.dim]));
  }
}

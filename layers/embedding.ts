// torch.nn.Embedding: rows of `weight` [V, D] gathered by int32 ids.
import * as tf from '@tensorflow/tfjs';
import { markRowSplittable, rowChunks } from '../lib/device_limits';
import { Module, Parameter } from '../lib/module';

export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(readonly numEmbeddings: number, readonly dim: number) {
    super();
    this.weight = this.param('weight', [numEmbeddings, dim]);
    markRowSplittable(this.weight);
  }

  /** ids [...] int32 -> [..., D]. Gathers on a flat index (gather with batchDims is wrong on wasm). */
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const flat = tf.reshape(ids, [-1]);
      const split = rowChunks(this.weight.value, `Embedding(${this.numEmbeddings}, ${this.dim}) weight`);
      const rows = split ? gatherChunked(split.chunks, split.rows, flat) : tf.gather(this.weight.value, flat);
      return tf.reshape(rows, [...ids.shape, this.dim]);
    });
  }
}

/** gather over a weight held as row chunks of `rows` rows: each id's row is taken from its chunk, exactly. */
function gatherChunked(chunks: tf.Tensor2D[], rows: number, ids: tf.Tensor): tf.Tensor {
  let out: tf.Tensor | undefined;
  const int = (v: number) => tf.scalar(v, 'int32');
  chunks.forEach((w, c) => {
    const n = w.shape[0];
    const local = tf.sub(ids, int(c * rows));
    const inChunk = tf.logicalAnd(tf.greaterEqual(local, int(0)), tf.less(local, int(n)));
    const g = tf.gather(w, tf.maximum(tf.minimum(local, int(n - 1)), int(0)));
    out = out ? tf.where(tf.broadcastTo(tf.expandDims(inChunk, 1), g.shape), g, out) : g;
  });
  return out!;
}

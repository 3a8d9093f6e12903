// Causal-LM loss as transformers' ForCausalLMLoss: logits at t predict labels at t+1, -100 ignored,
// mean over the counted tokens (accepts_loss_kwargs=False for GLM-V, so no num_items_in_batch).
import * as tf from '@tensorflow/tfjs';

export const IGNORE_INDEX = -100;

/** Host-side index math: (row of the flattened [B*L, V] logits, label) for every counted shifted label. */
export function shiftedLabelTargets(labels: number[][], vocabSize: number): { rows: number[]; targets: number[] } {
  const rows: number[] = [], targets: number[] = [];
  labels.forEach((row, b) => {
    const L = row.length;
    for (let t = 0; t + 1 < L; t++) {
      const y = row[t + 1]!;
      if (y === IGNORE_INDEX) continue;
      if (!Number.isInteger(y) || y < 0 || y >= vocabSize) throw new Error(`labels[${b}][${t + 1}] = ${y} is outside the vocabulary [0, ${vocabSize})`);
      rows.push(b * L + t);
      targets.push(y);
    }
  });
  return { rows, targets };
}

/** logits [B, L, V], labels [B][L] (host) -> scalar mean cross-entropy; NaN when nothing is counted, as torch. */
export function causalLmLoss(logits: tf.Tensor3D, labels: number[][]): tf.Scalar {
  return tf.tidy(() => {
    const [B, L, V] = logits.shape;
    if (labels.length !== B || labels.some((r) => r.length !== L)) {
      throw new Error(`labels shape [${labels.length}, ${labels[0]?.length}] differs from the input ids [${B}, ${L}]`);
    }
    const { rows, targets } = shiftedLabelTargets(labels, V);
    if (rows.length === 0) return tf.scalar(NaN);
    const picked = tf.gather(tf.reshape(logits, [B * L, V]), tf.tensor1d(rows, 'int32')); // [n, V]
    const flatIdx = tf.tensor1d(targets.map((y, i) => i * V + y), 'int32');
    const correct = tf.gather(tf.reshape(picked, [-1]), flatIdx); // [n]
    return tf.mean(tf.sub(tf.logSumExp(picked, -1), correct)) as tf.Scalar;
  });
}

// Attention at inference over blocks of query rows: the scores of a long sequence, [.., L, S], are made a block of rows
// at a time, since each row's softmax and product with the values is its own. A 4096-token prefill of the benchmark
// model has [16, 4096, 4096] scores, 1 GiB, which the wasm backend cannot index (it failed with "table index is out of
// bounds"); GLM-4.6V-Flash's vision tower on a 2048x2048 image would have 12 x 21k x 21k (21 GB). Not used while
// gradients are recorded: the backward pass reads the whole probabilities.
import * as tf from '@tensorflow/tfjs';

const DEFAULT_BLOCK_BYTES = 128 << 20;
let blockBytes = DEFAULT_BLOCK_BYTES;

/** Sets the score budget of one block (specs only: tiny shapes then take the blocked path); undefined restores it. */
export function setScoreBlockBytesForTests(bytes: number | undefined): void {
  blockBytes = bytes ?? DEFAULT_BLOCK_BYTES;
}

/** Query rows per block so that a block's scores (`rowBytes` each) fit the budget; undefined when all L rows fit. */
export function queryBlockRows(L: number, rowBytes: number): number | undefined {
  if (tf.engine().isTapeOn()) return undefined;
  const rows = Math.max(1, Math.floor(blockBytes / rowBytes));
  return rows < L ? rows : undefined;
}

/** `run(l0, n)` over the blocks of `rows` rows of 0..L, each in its own tidy; the outputs concatenated along `axis`. */
export function overQueryBlocks<T extends tf.Tensor>(L: number, rows: number, axis: number, run: (l0: number, n: number) => T): T {
  const parts: T[] = [];
  try {
    for (let l0 = 0; l0 < L; l0 += rows) parts.push(tf.tidy(() => run(l0, Math.min(rows, L - l0))));
    return tf.concat(parts, axis) as T;
  } finally {
    tf.dispose(parts);
  }
}

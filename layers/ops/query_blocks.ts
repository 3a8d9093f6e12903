// Attention at inference over blocks of query rows: the scores of a long sequence, [.., L, S], are made a block of rows
// at a time, since each row's softmax and product with the values is its own. A 4096-token prefill of the benchmark
// model has [16, 4096, 4096] scores, 1 GiB, which the wasm backend cannot index (it failed with "table index is out of
// bounds"); GLM-4.6V-Flash's vision tower on a 2048x2048 image would have 12 x 21k x 21k (21 GB). Not used while
// gradients are recorded: the backward pass reads the whole probabilities.
// Causal attention (a text prefill) of more than two causal blocks also runs in blocks below the budget: a block of
// query rows needs only the keys up to its last query, so the scores, softmax and products of the masked upper
// triangle are skipped: 62% of the attention's work for 1024 tokens in blocks of 256 rows, 53% for 4096. With two
// blocks (512 tokens) the slices cost what they save (tensorflow the same, wasm 8% slower), so it starts past that.
import * as tf from '@tensorflow/tfjs';

const DEFAULT_BLOCK_BYTES = 128 << 20;
const DEFAULT_CAUSAL_ROWS = 256;
let blockBytes = DEFAULT_BLOCK_BYTES;
let causalRows = DEFAULT_CAUSAL_ROWS;

/**
 * Sets the score budget of one block and the rows of a causal block (specs only: tiny shapes then take the blocked
 * path); undefined restores the defaults.
 */
export function setScoreBlockBytesForTests(bytes: number | undefined, causalBlockRows?: number): void {
  blockBytes = bytes ?? DEFAULT_BLOCK_BYTES;
  causalRows = causalBlockRows ?? DEFAULT_CAUSAL_ROWS;
}

/**
 * Query rows per block so that a block's scores (`rowBytes` each) fit the budget, and, for a causal attention, at most
 * the causal block's rows; undefined when all L rows are one block, or while gradients are recorded.
 */
export function queryBlockRows(L: number, rowBytes: number, causal = false): number | undefined {
  if (tf.engine().isTapeOn()) return undefined;
  const rows = Math.min(Math.max(1, Math.floor(blockBytes / rowBytes)), causal ? causalRows : Infinity);
  return rows < L ? rows : undefined;
}

/** Whether a causal attention over L queries runs in causal blocks: at inference, over more than two blocks. */
export function causalBlocksApply(L: number): boolean {
  return !tf.engine().isTapeOn() && L > 2 * causalRows;
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

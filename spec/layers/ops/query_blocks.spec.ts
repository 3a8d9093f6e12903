// layers/ops/query_blocks.ts: at inference, attention over a long sequence makes its scores a block of query rows at
// a time. A small score budget makes tiny shapes take the blocked path; the result must be the unblocked one. The
// package's fused decode attention (native backend) would take these few query rows whole: it is off here.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { cachedAttention, scaledDotProductAttention } from '../../../layers/ops/attention';
import { blockDiagonalAttention } from '../../../layers/ops/block_diagonal_attention';
import { causalMask, isCausalMask, unpaddedCausalMask } from '../../../layers/ops/causal_mask';
import { causalBlocksApply, queryBlockRows, setScoreBlockBytesForTests } from '../../../layers/ops/query_blocks';
import { setFusedOpsOffForTests } from '../../../lib/kernels/tf_fused';
import { expectClose } from '../../helpers/expect_close';

/** How many Softmax kernels `fn` runs: one per block of query rows (per span for the vision attention). */
async function softmaxCount(fn: () => tf.Tensor): Promise<number> {
  const p = await tf.profile(fn);
  return p.kernels.filter((k) => k.name === 'Softmax').length;
}

/** The key widths of the Softmax kernels `fn` runs, in order: one per block of query rows. */
async function softmaxWidths(fn: () => tf.Tensor): Promise<number[]> {
  const p = await tf.profile(fn);
  return p.kernels.filter((k) => k.name === 'Softmax').map((k) => k.outputShapes[0]!.at(-1)!);
}

/** `fn` with every score block limited to `bytes` and causal blocks to `causalRows` rows, restored after. */
function blocked<T>(bytes: number | undefined, fn: () => T, causalRows?: number): T {
  setScoreBlockBytesForTests(bytes, causalRows);
  try {
    return fn();
  } finally {
    setScoreBlockBytesForTests(undefined);
  }
}

describe('attention over blocks of query rows (inference)', () => {
  const [B, H, Hkv, L, Dh] = [2, 6, 2, 9, 8];
  const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
  before(() => setFusedOpsOffForTests(true));
  after(() => setFusedOpsOffForTests(false));

  it('queryBlockRows: rows that fit the budget, none when all fit or when gradients are recorded', () => {
    expect(blocked(1000, () => queryBlockRows(9, 432))).to.equal(2);
    expect(blocked(100, () => queryBlockRows(9, 432)), 'at least one row').to.equal(1);
    expect(blocked(10_000, () => queryBlockRows(9, 432))).to.equal(undefined);
    const seen: Array<number | undefined> = [];
    tf.grad((x: tf.Tensor) => {
      seen.push(blocked(1000, () => queryBlockRows(9, 432)));
      return tf.sum(x);
    })(tf.ones([2])).dispose();
    expect(seen).to.deep.equal([undefined]);
  });

  it('causal blocks: the causal rows below the budget, from three blocks on, not while gradients are recorded', () => {
    expect(blocked(1000, () => queryBlockRows(9, 100, true), 3), 'the causal rows under the budget').to.equal(3);
    expect(blocked(1000, () => queryBlockRows(9, 432, true), 3), 'the budget under the causal rows').to.equal(2);
    expect(blocked(undefined, () => [6, 7].map(causalBlocksApply), 3)).to.deep.equal([false, true]);
    const seen: boolean[] = [];
    tf.grad((x: tf.Tensor) => {
      seen.push(blocked(undefined, () => causalBlocksApply(7), 3));
      return tf.sum(x);
    })(tf.ones([2])).dispose();
    expect(seen).to.deep.equal([false]);
  });

  it('scaledDotProductAttention: the same values in blocks of 2 query rows, causal + padding mask', async () => {
    const q = rnd([B, H, L, Dh], 1) as tf.Tensor4D, k = rnd([B, Hkv, L, Dh], 2) as tf.Tensor4D, v = rnd([B, Hkv, L, Dh], 3) as tf.Tensor4D;
    const am = tf.tensor2d([Array(L).fill(1), [0, 0, ...Array(L - 2).fill(1)]], undefined, 'int32');
    const mask = causalMask(am, L);
    const whole = scaledDotProductAttention(q, k, v, mask, Dh ** -0.5);
    const before = tf.memory().numTensors;
    const parts = blocked(4 * B * H * L * 2, () => scaledDotProductAttention(q, k, v, mask, Dh ** -0.5));
    expect(tf.memory().numTensors, 'only the result is left').to.equal(before + 1);
    expectClose(parts, whole, { atol: 1e-6, label: 'blocked vs whole' });
    expect(await softmaxCount(() => blocked(4 * B * H * L * 2, () => scaledDotProductAttention(q, k, v, mask, Dh ** -0.5))), '9 rows in blocks of 2').to.equal(5);
    tf.dispose([q, k, v, am, mask, whole, parts]);
  });

  it('cachedAttention: the same values in blocks, for a cached prefill of 5 tokens after 4 into a cache with free room', async () => {
    const [Lq, S, C] = [5, 9, 16];
    const q = rnd([B, H, Lq, Dh], 4) as tf.Tensor4D;
    const [k, v] = [rnd([B, Hkv, S, Dh], 5), rnd([B, Hkv, S, Dh], 6)].map((t) => tf.pad(t, [[0, 0], [0, 0], [0, C - S], [0, 0]])) as [tf.Tensor4D, tf.Tensor4D];
    const cached = { keys: k, values: v, valuesTransposed: false, length: S };
    const am = tf.tensor2d([Array(S).fill(1), [0, ...Array(S - 1).fill(1)]], undefined, 'int32');
    const mask = causalMask(am, Lq);
    const whole = cachedAttention(q, cached, mask, Dh ** -0.5);
    const parts = blocked(4 * B * H * C * 2, () => cachedAttention(q, cached, mask, Dh ** -0.5));
    expectClose(parts, whole, { atol: 1e-6, label: 'blocked vs whole' });
    expect(await softmaxCount(() => blocked(4 * B * H * C * 2, () => cachedAttention(q, cached, mask, Dh ** -0.5))), '5 rows in blocks of 2').to.equal(3);
    tf.dispose([q, k, v, am, mask, whole, parts]);
  });

  it('an unpadded causal mask: blocks of 2 query rows read the keys up to their last query only, the same values', async () => {
    const q = rnd([B, H, L, Dh], 1) as tf.Tensor4D, k = rnd([B, Hkv, L, Dh], 2) as tf.Tensor4D, v = rnd([B, Hkv, L, Dh], 3) as tf.Tensor4D;
    const wholeMask = unpaddedCausalMask(L, L);
    const whole = scaledDotProductAttention(q, k, v, wholeMask, Dh ** -0.5);
    const run = () => blocked(undefined, () => {
      const mask = unpaddedCausalMask(L, L);
      expect(isCausalMask(mask)).to.equal(true);
      return tf.tidy(() => scaledDotProductAttention(q, k, v, mask, Dh ** -0.5));
    }, 2);
    const before = tf.memory().numTensors;
    const parts = run();
    expect(tf.memory().numTensors, 'the result and the mask are left').to.equal(before + 2);
    expectClose(parts, whole, { atol: 1e-6, label: 'causal blocks vs whole' });
    expect(await softmaxWidths(run), 'blocks of rows 0-1, 2-3, .., 8').to.deep.equal([2, 4, 6, 8, 9]);
    expect(isCausalMask(wholeMask), 'L = 9 is under two blocks of the default rows').to.equal(false);
    tf.dispose([q, k, v, wholeMask, whole, parts]);
  });

  it('a padded mask keeps every key: a left-padded row that sees nothing is averaged over all of them, as in HF', async () => {
    const q = rnd([B, H, L, Dh], 1) as tf.Tensor4D, k = rnd([B, Hkv, L, Dh], 2) as tf.Tensor4D, v = rnd([B, Hkv, L, Dh], 3) as tf.Tensor4D;
    const am = tf.tensor2d([Array(L).fill(1), [0, 0, ...Array(L - 2).fill(1)]], undefined, 'int32');
    const whole = scaledDotProductAttention(q, k, v, causalMask(am, L), Dh ** -0.5);
    const run = () => blocked(undefined, () => {
      const mask = causalMask(am, L);
      expect(isCausalMask(mask)).to.equal(false);
      return scaledDotProductAttention(q, k, v, mask, Dh ** -0.5);
    }, 2);
    const parts = run();
    expectClose(parts, whole, { atol: 1e-6, label: 'left-padded, whole width' });
    expect(await softmaxWidths(run), 'one block: the scores fit the budget').to.deep.equal([L]);
    tf.dispose([q, k, v, am, whole, parts]);
  });

  it('a causal mask and a cache with free room: a block reads the cached positions up to its last query', async () => {
    const [Lq, S, C] = [5, 9, 16];
    const q = rnd([B, H, Lq, Dh], 4) as tf.Tensor4D;
    const [k, v] = [rnd([B, Hkv, S, Dh], 5), rnd([B, Hkv, S, Dh], 6)].map((t) => tf.pad(t, [[0, 0], [0, 0], [0, C - S], [0, 0]])) as [tf.Tensor4D, tf.Tensor4D];
    const vT = tf.transpose(v, [0, 1, 3, 2]) as tf.Tensor4D;
    for (const cached of [{ keys: k, values: v, valuesTransposed: false, length: S }, { keys: k, values: vT, valuesTransposed: true, length: S }]) {
      const attend = () => tf.tidy(() => cachedAttention(q, cached, unpaddedCausalMask(S, Lq), Dh ** -0.5));
      const whole = attend();
      const run = () => blocked(undefined, attend, 2);
      const parts = run();
      expectClose(parts, whole, { atol: 1e-6, label: `causal blocks vs whole, values transposed: ${cached.valuesTransposed}` });
      expect(await softmaxWidths(run), '4 cached + rows 0-1, 2-3, 4').to.deep.equal([6, 8, 9]);
      tf.dispose([whole, parts]);
    }
    tf.dispose([q, k, v, vT]);
  });

  it('blockDiagonalAttention: the same values in blocks, two spans', async () => {
    const N = 11;
    const [q, k, v] = [rnd([N, H, Dh], 7), rnd([N, H, Dh], 8), rnd([N, H, Dh], 9)] as tf.Tensor3D[];
    const whole = blockDiagonalAttention(q!, k!, v!, [0, 7, N], Dh ** -0.5);
    const parts = blocked(4 * H * 7 * 3, () => blockDiagonalAttention(q!, k!, v!, [0, 7, N], Dh ** -0.5));
    expectClose(parts, whole, { atol: 1e-6, label: 'blocked vs whole' });
    // span 0 (7 rows, 3 a block): 3 blocks; span 1 (4 rows, 5 a block at its width): whole
    expect(await softmaxCount(() => blocked(4 * H * 7 * 3, () => blockDiagonalAttention(q!, k!, v!, [0, 7, N], Dh ** -0.5)))).to.equal(4);
    tf.dispose([q!, k!, v!, whole, parts]);
  });
});

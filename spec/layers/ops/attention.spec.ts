// Scaled-dot-product attention (additive mask, grouped-query heads) and the causal + padding mask.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { cachedAttention, scaledDotProductAttention } from '../../../layers/ops/attention';
import { causalMask, MASK_MIN } from '../../../layers/ops/causal_mask';
import { expectClose } from '../../helpers/expect_close';

/** repeat_kv: kv head g becomes heads g*G .. g*G + G - 1. [B, Hkv, S, Dh] -> [B, Hkv*G, S, Dh] */
function repeatKv(x: tf.Tensor4D, G: number): tf.Tensor4D {
  const [B, Hkv, S, Dh] = x.shape;
  const x5 = tf.expandDims(x, 2); // [B, Hkv, 1, S, Dh]; concat, as tfjs has no rank-5 tile gradient
  return tf.reshape(tf.concat(Array<tf.Tensor>(G).fill(x5), 2), [B, Hkv * G, S, Dh]);
}

/** Plain-JS attention for one (batch, head): softmax(q k^T * scale + mask) v, from nested arrays. */
function naive(q: number[][], k: number[][], v: number[][], mask: number[][], scale: number): number[][] {
  return q.map((qi, i) => {
    const s = k.map((kj, j) => qi.reduce((a, x, d) => a + x * kj[d]!, 0) * scale + mask[i]![j]!);
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return v[0]!.map((_, d) => e.reduce((a, w, j) => a + (w / z) * v[j]![d]!, 0));
  });
}

describe('causalMask', () => {
  it('combines causality (with a past) and left padding, as create_causal_mask', () => {
    // B=2, S=4 (past 1 + L 3); row 1 has its first two tokens padded
    const am = tf.tensor2d([[1, 1, 1, 1], [0, 0, 1, 1]], undefined, 'int32');
    const m = causalMask(am, 3);
    expect(m.shape).to.deep.equal([2, 1, 3, 4]);
    const X = MASK_MIN;
    expect(Array.from(m.dataSync())).to.deep.equal([
      0, 0, X, X, /**/ 0, 0, 0, X, /**/ 0, 0, 0, 0,
      X, X, X, X, /**/ X, X, 0, X, /**/ X, X, 0, 0,
    ]);
    [am, m].forEach((t) => t.dispose());
  });

  it('rejects a mask shorter than the query', () => {
    const am = tf.ones([1, 2], 'int32') as tf.Tensor2D;
    expect(() => causalMask(am, 3)).to.throw(/shorter than the 3 query tokens/);
    am.dispose();
  });
});

describe('scaledDotProductAttention', () => {
  it('matches a plain-JS softmax attention with a causal + padding mask, in the [B, L, H, Dh] output layout', () => {
    const [B, H, L, Dh] = [2, 2, 3, 4];
    const q = tf.randomNormal([B, H, L, Dh], 0, 1, 'float32', 11) as tf.Tensor4D;
    const k = tf.randomNormal([B, H, L, Dh], 0, 1, 'float32', 12) as tf.Tensor4D;
    const v = tf.randomNormal([B, H, L, Dh], 0, 1, 'float32', 13) as tf.Tensor4D;
    const am = tf.tensor2d([[1, 1, 1], [0, 1, 1]], undefined, 'int32');
    const mask = causalMask(am, L);
    const out = scaledDotProductAttention(q, k, v, mask, 0.5);
    expect(out.shape).to.deep.equal([B, L, H, Dh]);
    const [qa, ka, va, ma] = [q, k, v, mask].map((t) => t.arraySync() as number[][][][]);
    const oa = out.arraySync() as number[][][][];
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const want = naive(qa[b]![h]!, ka[b]![h]!, va[b]![h]!, ma[b]![0]!, 0.5);
        expectClose(oa[b]!.map((row) => row[h]!).flat(), want.flat(), { atol: 1e-5, label: `b${b} h${h}` });
      }
    }
    // the padding query of row 1 sees no key: it averages all values (HF eager with finfo.min does the same)
    const mean = tf.reshape(tf.mean(tf.slice(v, [1, 0, 0, 0], [1, H, L, Dh]), 2), [1, 1, H, Dh]);
    expectClose(tf.slice(out, [1, 0, 0, 0], [1, 1, H, Dh]), mean, { atol: 1e-6, label: 'fully masked row' });
    [q, k, v, am, mask, out, mean].forEach((t) => t.dispose());
  });

  it('with grouped-query heads equals multi-head attention on repeat_kv keys and values, gradients included', () => {
    const [B, H, Hkv, L, Dh] = [2, 6, 2, 5, 8];
    const q = tf.randomNormal([B, H, L, Dh], 0, 1, 'float32', 21) as tf.Tensor4D;
    const k = tf.randomNormal([B, Hkv, L, Dh], 0, 1, 'float32', 22) as tf.Tensor4D;
    const v = tf.randomNormal([B, Hkv, L, Dh], 0, 1, 'float32', 23) as tf.Tensor4D;
    const w = tf.randomNormal([B, L, H, Dh], 0, 1, 'float32', 24);
    const am = tf.tensor2d([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], undefined, 'int32');
    const mask = causalMask(am, L);
    const gqa = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(scaledDotProductAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, mask, Dh ** -0.5), w));
    const mha = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(scaledDotProductAttention(a as tf.Tensor4D, repeatKv(b as tf.Tensor4D, 3), repeatKv(c as tf.Tensor4D, 3), mask, Dh ** -0.5), w));
    const outG = scaledDotProductAttention(q, k, v, mask, Dh ** -0.5);
    const outM = scaledDotProductAttention(q, repeatKv(k, 3), repeatKv(v, 3), mask, Dh ** -0.5);
    expectClose(outG, outM, { atol: 1e-6, label: 'GQA vs repeat_kv MHA' });
    const gG = tf.grads(gqa)([q, k, v]);
    const gM = tf.grads(mha)([q, k, v]);
    ['dq', 'dk', 'dv'].forEach((n, i) => expectClose(gG[i]!, gM[i]!, { atol: 1e-5, label: n }));
    [q, k, v, w, am, mask, outG, outM, ...gG, ...gM].forEach((t) => t.dispose());
  });

  it('serves q heads g*G .. g*G+G-1 from kv head g (not g, g+Hkv, ...)', () => {
    // kv head 0 has values 0, kv head 1 values 1: q heads 0,1 must read 0 and heads 2,3 read 1
    const q = tf.randomNormal([1, 4, 2, 4], 0, 1, 'float32', 31) as tf.Tensor4D;
    const k = tf.randomNormal([1, 2, 2, 4], 0, 1, 'float32', 32) as tf.Tensor4D;
    const v = tf.concat([tf.zeros([1, 1, 2, 4]), tf.ones([1, 1, 2, 4])], 1) as tf.Tensor4D;
    const out = scaledDotProductAttention(q, k, v, null, 0.5); // [1, 2, 4, 4]
    const perHead = tf.mean(out, [0, 1, 3]);
    expectClose(perHead, [0, 0, 1, 1], { atol: 1e-6, label: 'head -> kv head' });
    [q, k, v, out, perHead].forEach((t) => t.dispose());
  });
});

describe('cachedAttention', () => {
  // decode (one query: the (Vᵀ pᵀ)ᵀ form) and a cached prefill with a causal + padding mask (the p·V form), in the
  // cache's three layouts: concatenated (values transposed), preallocated and full, preallocated with free room
  for (const L of [1, 5]) {
    it(`equals scaledDotProductAttention in every cache layout, ${L} new token(s) after a past of 4`, () => {
      const [B, H, Hkv, S, Dh, free] = [2, 6, 2, 4 + L, 8, 7];
      const q = tf.randomNormal([B, H, L, Dh], 0, 1, 'float32', 41) as tf.Tensor4D;
      const k = tf.randomNormal([B, Hkv, S, Dh], 0, 1, 'float32', 42) as tf.Tensor4D;
      const v = tf.randomNormal([B, Hkv, S, Dh], 0, 1, 'float32', 43) as tf.Tensor4D;
      const vT = tf.transpose(v, [0, 1, 3, 2]) as tf.Tensor4D;
      const [kRoom, vRoom] = [k, v].map((t) => tf.pad(t, [[0, 0], [0, 0], [0, free], [0, 0]])) as [tf.Tensor4D, tf.Tensor4D];
      // the second row's first 5 keys are padding: with L = 5 its first query (position 4) sees no key at all
      const am = tf.tensor2d([Array(S).fill(1), [0, 0, 0, 0, 0, ...Array(S - 5).fill(1)]], undefined, 'int32');
      const mask = L === 1 ? null : causalMask(am, L);
      const want = scaledDotProductAttention(q, k, v, mask, Dh ** -0.5);
      const layouts = {
        concatenated: { keys: k, values: vT, valuesTransposed: true, length: S },
        preallocated: { keys: k, values: v, valuesTransposed: false, length: S },
        'preallocated with free room': { keys: kRoom, values: vRoom, valuesTransposed: false, length: S },
      };
      for (const [name, cached] of Object.entries(layouts)) {
        const got = cachedAttention(q, cached, mask, Dh ** -0.5);
        expect(got.shape).to.deep.equal([B, L, H, Dh]);
        expectClose(got, want, { atol: 1e-6, label: `cached (${name}) vs plain` });
        got.dispose();
      }
      expect(() => cachedAttention(q, { ...layouts.concatenated, values: v }, mask, Dh ** -0.5)).to.throw(/do not fit/);
      expect(() => cachedAttention(q, { ...layouts['preallocated with free room'], length: S + 1 }, mask ?? causalMask(am, L), Dh ** -0.5)).to.throw(/mask .* does not fit/);
      [q, k, v, vT, kRoom, vRoom, am, mask, want].forEach((t) => t?.dispose());
    });
  }
});

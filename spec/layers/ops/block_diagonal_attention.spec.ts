import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { blockDiagonalAttention } from '../../../layers/ops/block_diagonal_attention';
import { expectClose } from '../../helpers/expect_close';

/** Plain float64 attention of each span on its own, from nested arrays [N][H][Dh]. */
function perSpanReference(q: number[][][], k: number[][][], v: number[][][], cu: number[], scale: number): number[] {
  const out: number[] = [];
  for (let s = 0; s + 1 < cu.length; s++) {
    const [a, b] = [cu[s]!, cu[s + 1]!];
    for (let i = a; i < b; i++) {
      for (let h = 0; h < q[0]!.length; h++) {
        const scores = [];
        for (let j = a; j < b; j++) scores.push(q[i]![h]!.reduce((acc, x, d) => acc + x * k[j]![h]![d]!, 0) * scale);
        const mx = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - mx));
        const z = e.reduce((x, y) => x + y, 0);
        for (let d = 0; d < q[0]![0]!.length; d++) out.push(e.reduce((acc, p, jj) => acc + (p / z) * v[a + jj]![h]![d]!, 0));
      }
    }
  }
  return out;
}

describe('blockDiagonalAttention (block-diagonal per cu_seqlens span)', () => {
  const [N, H, Dh] = [11, 2, 4];
  const cu = [0, 4, 4, 9, 11]; // spans of 4, 0 (empty), 5 and 2 tokens
  const make = (seed: number) => tf.randomNormal([N, H, Dh], 0, 1, 'float32', seed) as tf.Tensor3D;

  it('equals attention computed on each span alone (any number of spans, empty ones too)', () => {
    const [q, k, v] = [make(1), make(2), make(3)];
    const y = blockDiagonalAttention(q, k, v, cu, Dh ** -0.5);
    expect(y.shape).to.deep.equal([N, H, Dh]);
    expectClose(y, perSpanReference(q.arraySync(), k.arraySync(), v.arraySync(), cu, Dh ** -0.5), { atol: 1e-6, label: 'per-span' });
    const one = blockDiagonalAttention(q, k, v, [0, N], 0.3); // a single span is plain full attention
    expectClose(one, perSpanReference(q.arraySync(), k.arraySync(), v.arraySync(), [0, N], 0.3), { atol: 1e-6, label: 'one span' });
    tf.dispose([q, k, v, y, one]);
  });

  it('never mixes spans: changing one span leaves the others bit-identical, and cross-span gradients are exactly 0', () => {
    const [q, k, v] = [make(4), make(5), make(6)];
    const y0 = blockDiagonalAttention(q, k, v, cu, 0.5);
    const bump = tf.tidy(() => tf.concat([tf.zeros([4, H, Dh]), tf.fill([5, H, Dh], 3), tf.zeros([2, H, Dh])])); // span 2 only
    const y1 = blockDiagonalAttention(q, tf.add(k, bump) as tf.Tensor3D, tf.add(v, bump) as tf.Tensor3D, cu, 0.5);
    const [a, b] = [y0.dataSync(), y1.dataSync()];
    const per = H * Dh;
    for (let i = 0; i < N * per; i++) {
      const inSpan2 = i >= 4 * per && i < 9 * per;
      if (!inSpan2) expect(b[i], `row ${Math.floor(i / per)}`).to.equal(a[i]);
    }
    expect(Math.max(...Array.from(a.slice(4 * per, 9 * per), (x, i) => Math.abs(x - b[4 * per + i]!)))).to.be.greaterThan(1e-3);
    // d (sum of span 0's outputs) / d (q, k, v) vanishes outside span 0
    const sel = tf.tidy(() => tf.concat([tf.ones([4, H, Dh]), tf.zeros([7, H, Dh])]));
    const grads = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
      tf.sum(tf.mul(blockDiagonalAttention(qq as tf.Tensor3D, kk as tf.Tensor3D, vv as tf.Tensor3D, cu, 0.5), sel)))([q, k, v]);
    for (const [name, g] of [['q', grads[0]!], ['k', grads[1]!], ['v', grads[2]!]] as const) {
      const d = g.dataSync();
      expect(Array.from(d.slice(4 * per)).every((x) => x === 0), `${name} grad outside span 0`).to.equal(true);
      expect(Array.from(d.slice(0, 4 * per)).some((x) => x !== 0), `${name} grad inside span 0`).to.equal(true);
    }
    tf.dispose([q, k, v, y0, y1, bump, sel, ...grads]);
  });

  it('has the gradient of dense attention with a block-diagonal -inf mask', () => {
    const [q, k, v] = [make(7), make(8), make(9)];
    const dy = make(10);
    const scale = Dh ** -0.5;
    const mask = new Float32Array(N * N).fill(-1e9);
    for (let s = 0; s + 1 < cu.length; s++) for (let i = cu[s]!; i < cu[s + 1]!; i++) for (let j = cu[s]!; j < cu[s + 1]!; j++) mask[i * N + j] = 0;
    const maskT = tf.tensor2d(mask, [N, N]);
    const dense = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => {
      const t = (x: tf.Tensor) => tf.transpose(x, [1, 0, 2]) as tf.Tensor3D; // [H, N, Dh]
      const p = tf.softmax(tf.add(tf.mul(tf.matMul(t(qq), t(kk), false, true), scale), maskT));
      return tf.transpose(tf.matMul(p, t(vv)), [1, 0, 2]);
    };
    const ours = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
      tf.sum(tf.mul(blockDiagonalAttention(qq as tf.Tensor3D, kk as tf.Tensor3D, vv as tf.Tensor3D, cu, scale), dy)))([q, k, v]);
    const ref = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.mul(dense(qq, kk, vv), dy)))([q, k, v]);
    ours.forEach((g, i) => expectClose(g, ref[i]!, { atol: 1e-5, label: `grad ${'qkv'[i]}` }));
    tf.dispose([q, k, v, dy, maskT, ...ours, ...ref]);
  });

  it('rejects cu_seqlens that do not cover the tokens, naming them', () => {
    const x = make(11);
    expect(() => blockDiagonalAttention(x, x, x, [0, 4, 10], 1)).to.throw(/\[0,4,10\].*must end at the token count 11/);
    expect(() => blockDiagonalAttention(x, x, x, [1, 11], 1)).to.throw(/must start at 0/);
    expect(() => blockDiagonalAttention(x, x, x, [0, 6, 5, 11], 1)).to.throw(/entry 2/);
    x.dispose();
  });
});
